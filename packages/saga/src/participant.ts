import {
  HEADERS,
  Outcome,
  publish,
  type Handler,
  type HandlerContext,
  type HandlerOutcome,
  type Message,
} from '@sagabox/core';
import { isHandlerOutcome, validateTopic } from '@sagabox/core/extension';
import { SAGA_HEADERS } from './saga-topics.js';
import { addReplyTraceContext } from './saga-span.js';

/** What a participant's handler gets besides the command: the worker's transaction and the saga's coordinates. */
export interface ParticipantContext extends HandlerContext {
  /** The saga that sent the command, when it came from one. */
  readonly sagaId: string | undefined;
  /** The step name the command belongs to. */
  readonly step: string | undefined;
  /** `command` or `compensation`. */
  readonly phase: string | undefined;
  /** Send number of this command (> 1 when the orchestrator sent it again). */
  readonly attempt: number;
}

/**
 * The context of one command. A class with `signal` and `db` as prototype getters that
 * read the worker's, which makes its AbortController and kysely instance only when
 * read; an object literal with getters would be built through the runtime, per message.
 */
class CommandContext implements ParticipantContext {
  readonly #worker: HandlerContext;
  readonly client: HandlerContext['client'];
  readonly consumer: string;
  readonly logger: HandlerContext['logger'];

  constructor(
    worker: HandlerContext,
    readonly sagaId: string | undefined,
    readonly step: string | undefined,
    readonly phase: string | undefined,
    readonly attempt: number,
  ) {
    this.#worker = worker;
    this.client = worker.client;
    this.consumer = worker.consumer;
    this.logger = worker.logger;
  }

  get signal(): AbortSignal {
    return this.#worker.signal;
  }

  get db(): HandlerContext['db'] {
    return this.#worker.db;
  }
}

/**
 * A participant's handler of one command topic: does the local work through
 * `ctx.client`/`ctx.db` and returns the reply payload (any JSON value). It may also
 * return an `Outcome` (retry later, dead-letter), in which case nothing commits and no
 * reply is sent; throwing retries with backoff.
 */
export type ParticipantHandler<C = any, R = unknown> = (command: Message<C>, context: ParticipantContext) => Promise<R | HandlerOutcome> | R | HandlerOutcome;

/** Options of {@link participant}: one topic, or a map of topics to handlers. */
export type ParticipantOptions =
  | { topic: string; handle: ParticipantHandler; schema?: string }
  | { handlers: Record<string, ParticipantHandler>; schema?: string };

/**
 * Turns command handlers into one worker handler for a participant service. For each
 * command it runs your handler in the worker's transaction (after the inbox has
 * deduplicated the command's id), then publishes your return value as the reply to the
 * command's `reply-to` topic — through the participant's own outbox, in the same
 * transaction. So the local effect and the reply commit together, once per command.
 * The reply echoes the saga headers (`saga-id`, `saga-step-token`, ...) that the
 * orchestrator matches it by. A command without `reply-to` is handled without a reply.
 *
 * A message of a topic with no handler is dead-lettered.
 *
 * @example
 * const worker = createWorker({
 *   pool: inventoryPool,
 *   queue: 'inventory',
 *   handler: participant({
 *     handlers: {
 *       'inventory.reserve': async (command, { client }) => {
 *         const { rowCount } = await client.query('UPDATE stock SET qty = qty - 1 WHERE sku = $1 AND qty > 0', [command.payload.sku]);
 *         return rowCount === 1 ? { type: 'reserved', reservationId: command.id } : { type: 'out_of_stock' };
 *       },
 *       'inventory.release': async (command, { client }) => {
 *         await client.query('UPDATE stock SET qty = qty + 1 WHERE sku = $1', [command.payload.sku]);
 *         return { type: 'released' };
 *       },
 *     },
 *   }),
 * });
 */
export function participant(options: ParticipantOptions): Handler {
  const handlers = new Map<string, ParticipantHandler>();
  if ('handlers' in options) {
    for (const [topic, handle] of Object.entries(options.handlers)) handlers.set(validateTopic(topic), handle);
  } else {
    handlers.set(validateTopic(options.topic), options.handle);
  }
  const schema = options.schema;
  return async (message, ctx) => {
    const handle = handlers.get(message.topic);
    if (!handle) return Outcome.deadLetter(`no participant handler for topic ${message.topic}`);
    const h = message.headers;
    const attempt = Number(h[SAGA_HEADERS.attempt]);
    const context = new CommandContext(ctx, h[SAGA_HEADERS.sagaId], h[SAGA_HEADERS.step], h[SAGA_HEADERS.phase], Number.isInteger(attempt) && attempt >= 1 ? attempt : 1);
    const reply = await handle(message, context);
    if (isHandlerOutcome(reply)) return reply;
    const replyTo = h[SAGA_HEADERS.replyTo];
    if (replyTo === undefined) return;
    const headers: Record<string, string> = { [HEADERS.causationId]: message.id };
    for (const [name, value] of Object.entries(h)) {
      if (name.startsWith('saga-') || name === HEADERS.correlationId) headers[name] = value;
    }
    addReplyTraceContext(headers, message);
    const sagaId = h[SAGA_HEADERS.sagaId];
    await publish(
      ctx.client,
      { topic: replyTo, key: sagaId ?? null, payload: reply === undefined ? null : reply, headers },
      schema === undefined ? {} : { schema },
    );
  };
}
