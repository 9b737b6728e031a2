import { uuidv7 } from 'uuidv7';
import { SagaboxError } from '../shared/errors.js';
import { isMessageLabel } from './message-label.js';
import { validateTopic } from './topic-name.js';

/** Default largest serialised payload accepted by `publish`, in bytes (1 MiB). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Conventional header names sagabox reads and writes. Any other string header is carried as is. */
export const HEADERS = {
  traceparent: 'traceparent',
  correlationId: 'correlation-id',
  causationId: 'causation-id',
  replyTo: 'reply-to',
  sagaId: 'saga-id',
} as const;

/** A message to publish. Only `topic` and `payload` are required. */
export interface OutboxMessage<P = unknown> {
  /** Message id, a UUID. Defaults to a new UUIDv7. Delivery is idempotent by id: publishing an id again does not make a second effect. */
  id?: string;
  /** Topic name: dot-separated segments, e.g. `orders.created`. */
  topic: string;
  /** Ordering key: messages with the same key are delivered and handled one at a time, in commit order. */
  key?: string | null;
  /** Any JSON value (no BigInt, cycles, functions, symbols or `\u0000`). */
  payload: P;
  /** String headers: traceparent, correlation-id, causation-id, reply-to, or your own. */
  headers?: Record<string, string>;
  /** Deliver no earlier than this many milliseconds after publish. */
  delayMs?: number;
  /** Deliver no earlier than this time. Wins over `delayMs`. */
  availableAt?: Date;
  /** Time to live in milliseconds: not handled later than this after publish; dead-lettered as `expired`. */
  ttlMs?: number;
  /** Absolute expiry. Wins over `ttlMs`. */
  expiresAt?: Date;
  /**
   * Priority in its queue: higher is claimed first. An integer from -32768 to 32767;
   * default 0. Waiting messages rise with age (see `priorityAgingMs` in
   * `setQueueLimits`), so a stream of high ones does not starve low ones forever.
   */
  priority?: number;
  /**
   * Flow-control group (tenant, customer, merchant): a queue can cap how many
   * messages of one group are in flight and how fast they start (`setQueueLimits`).
   * 1-255 characters; default none.
   */
  group?: string | null;
}

/** Lowest and highest message priority (a PostgreSQL smallint). */
export const PRIORITY_RANGE = { min: -32_768, max: 32_767 } as const;

/** A message checked and serialised, ready for an INSERT. */
export interface EncodedMessage {
  id: string;
  topic: string;
  key: string | null;
  payload: string;
  headers: string;
  availableAt: Date | null;
  expiresAt: Date | null;
  priority: number;
  group: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function invalid(message: string, details: Record<string, unknown>): SagaboxError {
  return new SagaboxError('INVALID_MESSAGE', message, { details });
}

/**
 * Serialises a payload to JSON text, refusing what JSON or Postgres' jsonb would
 * silently change or reject.
 * @throws {SagaboxError} `INVALID_PAYLOAD` or `PAYLOAD_TOO_LARGE`
 */
export function encodePayload(payload: unknown, maxBytes: number, topic?: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload, (key, value: unknown) => {
      const t = typeof value;
      if (t === 'function' || t === 'symbol' || t === 'bigint') {
        throw new SagaboxError(
          'INVALID_PAYLOAD',
          `payload is not JSON-serialisable: ${key === '' ? 'the payload' : `property ${JSON.stringify(key)}`} is a ${t}`,
          { details: { topic, key } },
        );
      }
      if (t === 'number' && !Number.isFinite(value as number)) {
        throw new SagaboxError('INVALID_PAYLOAD', `payload is not JSON-serialisable: ${String(value)} at ${JSON.stringify(key)}`, {
          details: { topic, key },
        });
      }
      return value;
    });
  } catch (err) {
    if (err instanceof SagaboxError) throw err;
    throw new SagaboxError('INVALID_PAYLOAD', `payload is not JSON-serialisable: ${(err as Error).message}`, {
      cause: err,
      details: { topic },
    });
  }
  if (json === undefined) {
    throw new SagaboxError('INVALID_PAYLOAD', 'payload is not JSON-serialisable: it is undefined', { details: { topic } });
  }
  // jsonb cannot store the NUL character; JSON.stringify writes it as \u0000.
  if (json.includes('\\u0000')) {
    throw new SagaboxError('INVALID_PAYLOAD', 'payload contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store', {
      details: { topic },
    });
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) {
    throw new SagaboxError('PAYLOAD_TOO_LARGE', `payload is ${bytes} bytes, over the limit of ${maxBytes} bytes`, {
      details: { topic, bytes, maxBytes },
    });
  }
  return json;
}

function encodeHeaders(headers: unknown, topic: string): string {
  if (headers === undefined || headers === null) return '{}';
  if (typeof headers !== 'object' || Array.isArray(headers)) {
    throw new SagaboxError('INVALID_HEADERS', 'headers must be an object of string values', { details: { topic } });
  }
  for (const [name, value] of Object.entries(headers)) {
    if (name.length === 0 || name.length > 255) {
      throw new SagaboxError('INVALID_HEADERS', `header name ${JSON.stringify(name)} must be 1-255 characters`, {
        details: { topic, header: name },
      });
    }
    if (typeof value !== 'string' || value.includes('\u0000')) {
      throw new SagaboxError('INVALID_HEADERS', `header ${JSON.stringify(name)} must be a string without NUL characters, got ${typeof value}`, {
        details: { topic, header: name },
      });
    }
  }
  return JSON.stringify(headers);
}

function optionalDate(value: unknown, name: string, topic: string): Date | null {
  if (value === undefined || value === null) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw invalid(`${name} must be a valid Date`, { topic });
  return value;
}

function optionalMs(value: unknown, name: string, topic: string): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${name} must be a non-negative number of milliseconds`, { topic });
  }
  return value;
}

/**
 * Checks one message and serialises it. Every problem is a typed error naming it.
 * @param now the publish time used to resolve `delayMs` and `ttlMs`.
 */
export function encodeMessage(message: OutboxMessage, maxPayloadBytes: number, now: number = Date.now()): EncodedMessage {
  if (typeof message !== 'object' || message === null) throw invalid('message must be an object', {});
  const topic = validateTopic(message.topic);
  const id = message.id ?? uuidv7();
  if (typeof id !== 'string' || !UUID.test(id)) throw invalid(`message id ${JSON.stringify(id)} is not a UUID`, { topic });
  const key = message.key ?? null;
  if (key !== null && !isMessageLabel(key)) {
    throw invalid('key must be a string of 1-255 characters', { topic, id });
  }
  const group = message.group ?? null;
  if (group !== null && !isMessageLabel(group)) {
    throw invalid('group must be a string of 1-255 characters', { topic, id });
  }
  const priority = message.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < PRIORITY_RANGE.min || priority > PRIORITY_RANGE.max) {
    throw invalid(`priority must be an integer from ${PRIORITY_RANGE.min} to ${PRIORITY_RANGE.max}`, { topic, id });
  }
  const delay = optionalMs(message.delayMs, 'delayMs', topic);
  const ttl = optionalMs(message.ttlMs, 'ttlMs', topic);
  const availableAt = optionalDate(message.availableAt, 'availableAt', topic) ?? (delay ? new Date(now + delay) : null);
  const expiresAt = optionalDate(message.expiresAt, 'expiresAt', topic) ?? (ttl !== null ? new Date(now + ttl) : null);
  return {
    id: id.toLowerCase(),
    topic,
    key,
    payload: encodePayload(message.payload, maxPayloadBytes, topic),
    headers: encodeHeaders(message.headers, topic),
    availableAt,
    expiresAt,
    priority,
    group,
  };
}
