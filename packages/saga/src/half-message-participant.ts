import { createHash } from 'node:crypto';
import type pg from 'pg';
import {
  commitHalfMessage,
  HEADERS,
  isSagaboxError,
  Outcome,
  prepare,
  publish,
  rollbackHalfMessage,
  type Handler,
  type Message,
} from '@sagabox/core';
import { validateTopic } from '@sagabox/core/extension';
import type { ParticipantContext } from './participant.js';
import { SAGA_HEADERS } from './saga-topics.js';
import { addReplyTraceContext } from './saga-span.js';

/** What a half-message participant's action reports. */
export type ExternalActionResult =
  /** The action happened: the prepared reply is committed. */
  | { ok: true }
  /** The action did not happen: the prepared reply is rolled back and `reply` is sent instead. */
  | { ok: false; reply: unknown };

/** Options of {@link halfMessageParticipant}. */
export interface HalfMessageParticipantOptions<C = any> {
  /** The command topic. */
  topic: string;
  /**
   * Pool on the participant's database. The reply is prepared through it, outside the
   * worker's transaction, so that the half message survives a crash during the action.
   */
  pool: pg.Pool;
  /** The reply that announces success; prepared (invisible) before the action runs. */
  reply: (command: Message<C>) => unknown;
  /**
   * Performs the action outside Postgres. Give `halfMessageId` to the external system as
   * its idempotency key: after a crash the command is handled again with the same id,
   * and the relay's checker for the reply topic asks the external system by that id.
   */
  act: (command: Message<C>, context: ParticipantContext & { halfMessageId: string }) => Promise<ExternalActionResult>;
  /** Time the action may take before the relay asks the checker, in milliseconds. Default core's 60,000. */
  checkAfterMs?: number;
  /** sagabox's schema (default `sagabox`). */
  schema?: string;
}

/** A UUID derived from `text` (name-based, SHA-256), so a redelivered command maps to the same half message. */
function derivedUuid(text: string): string {
  const h = createHash('sha256').update(text).digest('hex');
  const variant = ((parseInt(h[16]!, 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function replyHeaders(message: Message): Record<string, string> {
  const headers: Record<string, string> = { [HEADERS.causationId]: message.id };
  for (const [name, value] of Object.entries(message.headers)) {
    if (name.startsWith('saga-') || name === HEADERS.correlationId) headers[name] = value;
  }
  addReplyTraceContext(headers, message);
  return headers;
}

/**
 * A participant whose action cannot join a Postgres transaction (a payment API): its
 * success reply is a half message. For each command it prepares the reply (invisible to
 * the relay), performs the action, then commits the reply — or rolls it back and sends
 * the failure reply — in the worker's transaction, together with the inbox ack.
 *
 * If the process dies after the action, the command comes back (its ack never
 * committed) and is handled again with the same half-message id: the external system
 * deduplicates by that idempotency key. If the command never comes back (dead-lettered),
 * the relay's checker for the reply topic decides from the external system, by message
 * id: register it with `createRelay({ checkers: { [replyTopic]: checker } })`. A reply
 * rolled back by the checker leaves the saga to its step timeout, which compensates.
 *
 * @example
 * const payments = createWorker({
 *   pool,
 *   queue: 'payment',
 *   handler: halfMessageParticipant({
 *     topic: 'payment.charge',
 *     pool,
 *     reply: (command) => ({ type: 'charged', orderId: command.payload.orderId }),
 *     act: async (command, { halfMessageId }) => {
 *       const charge = await provider.charge({ amount: command.payload.amount, idempotencyKey: halfMessageId });
 *       return charge.ok ? { ok: true } : { ok: false, reply: { type: 'declined', reason: charge.reason } };
 *     },
 *   }),
 * });
 */
export function halfMessageParticipant<C = any>(options: HalfMessageParticipantOptions<C>): Handler<C> {
  const topic = validateTopic(options.topic);
  const schemaOption = options.schema === undefined ? {} : { schema: options.schema };
  return async (message, ctx) => {
    if (message.topic !== topic) return Outcome.deadLetter(`no participant handler for topic ${message.topic}`);
    const replyTo = message.headers[SAGA_HEADERS.replyTo];
    if (replyTo === undefined) return Outcome.deadLetter('a half-message participant needs a reply-to header');
    const sagaId = message.headers[SAGA_HEADERS.sagaId];
    const headers = replyHeaders(message);
    const halfMessageId = derivedUuid(`${ctx.consumer}\u0000${message.id}`);
    const log = ctx.logger.child({ messageId: message.id, sagaId, halfMessageId });
    try {
      await prepare(
        options.pool,
        { id: halfMessageId, topic: replyTo, key: sagaId ?? null, payload: options.reply(message), headers },
        { ...schemaOption, ...(options.checkAfterMs === undefined ? {} : { checkAfterMs: options.checkAfterMs }) },
      );
    } catch (err) {
      if (!isSagaboxError(err, 'HALF_MESSAGE_ALREADY_DECIDED')) throw err;
      // Handled before (or decided by the checker): that decision stands.
      log.info({ decision: err.details.decision }, 'command handled before; its half-message reply was already decided');
      return;
    }
    const attempt = Number(message.headers[SAGA_HEADERS.attempt]);
    const context = Object.defineProperties(
      {
        client: ctx.client,
        consumer: ctx.consumer,
        logger: ctx.logger,
        sagaId,
        step: message.headers[SAGA_HEADERS.step],
        phase: message.headers[SAGA_HEADERS.phase],
        attempt: Number.isInteger(attempt) && attempt >= 1 ? attempt : 1,
        halfMessageId,
      },
      { db: { get: () => ctx.db, enumerable: true } },
    ) as ParticipantContext & { halfMessageId: string };
    const result = await options.act(message, context);
    try {
      if (result.ok) {
        await commitHalfMessage(ctx.client, halfMessageId, { ...schemaOption, note: `command ${message.id}` });
      } else {
        await rollbackHalfMessage(ctx.client, halfMessageId, { ...schemaOption, note: `command ${message.id}` });
        await publish(ctx.client, { topic: replyTo, key: sagaId ?? null, payload: result.reply ?? null, headers }, schemaOption);
      }
    } catch (err) {
      if (!isSagaboxError(err, 'HALF_MESSAGE_ALREADY_DECIDED')) throw err;
      // The checker decided first (the action outlived checkAfterMs): its decision stands,
      // and the saga's step timeout compensates if the two disagree.
      log.warn({ decision: err.details.decision, actionOk: result.ok }, 'the checker decided the half-message reply first');
    }
  };
}
