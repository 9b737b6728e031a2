import { createHash } from 'node:crypto';
import { HEADERS, type Message, type RelayedMessage } from '@sagabox/core';
import type { AsyncMessage, Envelope } from 'rabbitmq-client';

/**
 * AMQP headers that carry the sagabox fields AMQP has no property for. Every header
 * of the outbox message (traceparent, correlation-id, causation-id, reply-to, saga-*)
 * travels as an AMQP header of the same name.
 */
export const AMQP_HEADERS = {
  topic: 'sagabox-topic',
  key: 'sagabox-key',
  runAt: 'sagabox-run-at',
  priority: 'sagabox-priority',
  group: 'sagabox-group',
} as const;

const SAGABOX_FIELD_HEADERS: ReadonlySet<string> = new Set(Object.values(AMQP_HEADERS));

/** Headers the consumer adds to a message it dead-letters. */
export const DEAD_LETTER_HEADERS = {
  reason: 'sagabox-dead-reason',
  error: 'sagabox-dead-error',
  attempts: 'sagabox-dead-attempts',
  queue: 'sagabox-dead-queue',
  consumer: 'sagabox-dead-consumer',
} as const;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The AMQP properties and body of an outbox message, ready for `basicPublish`. */
export function toAmqp(m: RelayedMessage, exchange: string, routingKey: string, now: number): { envelope: Envelope; body: Buffer } {
  const own = JSON.parse(m.headers) as Record<string, string>;
  const headers: Record<string, string | number> = { ...own, [AMQP_HEADERS.topic]: m.topic };
  if (m.key !== null) headers[AMQP_HEADERS.key] = m.key;
  if (m.runAt !== null) headers[AMQP_HEADERS.runAt] = m.runAt.toISOString();
  if (m.priority !== 0) headers[AMQP_HEADERS.priority] = m.priority;
  if (m.group !== null) headers[AMQP_HEADERS.group] = m.group;
  const envelope: Envelope = {
    exchange,
    routingKey,
    mandatory: true,
    durable: true,
    messageId: m.id,
    timestamp: Math.floor(m.createdAt.getTime() / 1000),
    contentType: 'application/json',
    headers,
  };
  const correlationId = own[HEADERS.correlationId];
  if (correlationId !== undefined) envelope.correlationId = correlationId;
  // The broker drops the message once its TTL runs out, as the relay would have.
  if (m.expiresAt !== null) envelope.expiration = String(Math.max(0, m.expiresAt.getTime() - now));
  return { envelope, body: Buffer.from(m.payload, 'utf8') };
}

/**
 * The inbox needs a UUID. A sagabox message's id is one; a foreign producer's
 * `message_id` of another form is hashed into one (name-based, SHA-1, as UUIDv5), so
 * its redeliveries still deduplicate.
 */
export function inboxId(messageId: string): string {
  if (UUID.test(messageId)) return messageId.toLowerCase();
  const h = createHash('sha1').update(`amqp-message-id:${messageId}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** A delivery read into a handler's message, or the reason it cannot be one. */
export type ReadDelivery<P> = { ok: true; message: Message<P>; runAt: Date | null } | { ok: false; problem: string };

/**
 * Reads a delivery as a sagabox {@link Message}. Anything from another producer is
 * accepted when it has a `message_id`, a JSON body and headers whose values are
 * strings, numbers or booleans (`x-*` headers, which the broker itself adds, are
 * left out); anything else is a problem the consumer dead-letters.
 */
export function fromAmqp<P>(d: AsyncMessage, queue: string): ReadDelivery<P> {
  if (typeof d.messageId !== 'string' || d.messageId.length === 0) return { ok: false, problem: 'no message_id property' };
  if (d.messageId.length > 255) return { ok: false, problem: 'message_id longer than 255 characters' };
  let payload: unknown = d.body;
  if (Buffer.isBuffer(payload) || d.contentType === 'application/json') {
    // rabbitmq-client parses application/json bodies and leaves a Buffer when that fails.
    const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
    if (text !== undefined) {
      try {
        payload = text.length === 0 ? null : JSON.parse(text);
      } catch {
        return { ok: false, problem: `body is not JSON (content type ${d.contentType ?? 'none'})` };
      }
    }
  }
  const raw = d.headers ?? {};
  // The message's headers leave out the ones carrying sagabox fields; built without
  // `delete`, which turns the object into a slow dictionary on every delivery.
  const headers: Record<string, string> = {};
  for (const name in raw) {
    if (name.startsWith('x-')) continue;
    const value: unknown = raw[name];
    if (typeof value !== 'string' && typeof value !== 'number' && typeof value !== 'boolean') {
      return { ok: false, problem: `header ${JSON.stringify(name)} is not a string, number or boolean` };
    }
    if (!SAGABOX_FIELD_HEADERS.has(name)) headers[name] = String(value);
  }
  const topic = raw[AMQP_HEADERS.topic] === undefined ? d.routingKey : String(raw[AMQP_HEADERS.topic]);
  const runAtText = raw[AMQP_HEADERS.runAt];
  const runAt = runAtText === undefined ? null : new Date(String(runAtText));
  if (runAt !== null && Number.isNaN(runAt.getTime())) return { ok: false, problem: `header ${AMQP_HEADERS.runAt} is not a date` };
  const priority = Number(raw[AMQP_HEADERS.priority] ?? 0);
  if (d.correlationId !== undefined && headers[HEADERS.correlationId] === undefined) headers[HEADERS.correlationId] = d.correlationId;
  const message: Message<P> = {
    id: inboxId(d.messageId),
    queue,
    topic,
    key: d.headers?.[AMQP_HEADERS.key] === undefined ? null : String(d.headers[AMQP_HEADERS.key]),
    payload: payload as P,
    headers,
    attempts: 1,
    createdAt: typeof d.timestamp === 'number' ? new Date(d.timestamp * 1000) : new Date(),
    priority: Number.isFinite(priority) ? priority : 0,
    group: d.headers?.[AMQP_HEADERS.group] === undefined ? null : String(d.headers[AMQP_HEADERS.group]),
  };
  return { ok: true, message, runAt };
}
