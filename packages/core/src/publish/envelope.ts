import { uuidv7 } from '../shared/uuidv7.js';
import { SagaboxError } from '../shared/errors.js';
import { isMessageLabel, isStorableText } from './message-label.js';

export { isStorableText } from './message-label.js';
import { validateTopic } from './topic-name.js';
import { describeValue } from '../shared/describe-value.js';

/** Default largest serialised payload accepted by `publish`, in bytes (1 MiB). */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

/** Largest `maxPayloadBytes` accepted, in bytes: just under jsonb's own limit of 256 MiB. */
export const MAX_PAYLOAD_BYTES_LIMIT = 256 * 1024 * 1024 - 1;

/**
 * Checks a `maxPayloadBytes` option, adding a problem when it is given and is not an
 * integer from 1 to {@link MAX_PAYLOAD_BYTES_LIMIT}; returns the value or the default.
 */
export function resolveMaxPayloadBytes(value: unknown, problems: string[]): number {
  if (value === undefined) return DEFAULT_MAX_PAYLOAD_BYTES;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_PAYLOAD_BYTES_LIMIT) {
    problems.push(`maxPayloadBytes must be an integer from 1 to ${MAX_PAYLOAD_BYTES_LIMIT}, got ${describeValue(value)}`);
    return DEFAULT_MAX_PAYLOAD_BYTES;
  }
  return value;
}

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
  /**
   * Any JSON value: no BigInt, cycles, functions, symbols, `Map`/`Set`, NUL characters
   * or unpaired surrogates, at most {@link MAX_PAYLOAD_DEPTH} levels deep. See
   * {@link encodePayload}.
   */
  payload: P;
  /**
   * String headers: traceparent, correlation-id, causation-id, reply-to, or your own.
   * At most {@link MAX_HEADERS_BYTES} (16 KiB) serialised.
   */
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
   * default 0. Waiting counts too (see `priorityAgingMs` in `setQueueLimits`): a
   * message that has waited long enough goes ahead of newer ones of higher priority, so
   * a stream of high ones does not starve low ones forever.
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
  /** The message id (UUIDv7). */
  id: string;
  /** The validated topic. */
  topic: string;
  /** The ordering key, or null. */
  key: string | null;
  /** The payload as JSON text, within the size limit. */
  payload: string;
  /** The headers as a JSON object's text. */
  headers: string;
  /** When the message may be delivered, or null for now. */
  availableAt: Date | null;
  /** When the message expires undelivered, or null for never. */
  expiresAt: Date | null;
  /** The priority (higher first). */
  priority: number;
  /** The flow-control group, or null. */
  group: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Largest serialised headers object accepted by `publish`, in bytes (16 KiB). Headers
 * travel with every delivery and every broker hop; the payload is where data belongs.
 */
export const MAX_HEADERS_BYTES = 16 * 1024;

/**
 * Deepest nesting of arrays and objects accepted in a payload (1,000 levels). Deeper
 * values overflow the serialiser's stack or PostgreSQL's jsonb parser before they could
 * be stored, so they are refused with a message that says so.
 */
export const MAX_PAYLOAD_DEPTH = 1_000;

/**
 * Earliest and latest time accepted for `availableAt` and `expiresAt` (also when
 * computed from `delayMs` / `ttlMs`): years 1 to 9999. Both ends are inside
 * PostgreSQL's `timestamptz` range and JavaScript's `Date` range, so a time
 * round-trips unchanged.
 */
export const MESSAGE_TIME_RANGE = {
  min: new Date('0001-01-01T00:00:00.000Z'),
  max: new Date('9999-12-31T23:59:59.999Z'),
} as const;

function invalid(message: string, details: Record<string, unknown>): SagaboxError {
  return new SagaboxError('INVALID_MESSAGE', message, { details });
}

function payloadError(message: string, topic: string | undefined, extra: Record<string, unknown> = {}, cause?: unknown): SagaboxError {
  return new SagaboxError('INVALID_PAYLOAD', message, { details: { topic, ...extra }, ...(cause === undefined ? {} : { cause }) });
}

// JSON.stringify writes a NUL as \u0000 and a lone surrogate as \udXXX (a pair is
// written as is). Such an escape preceded by an even number of backslashes is one;
// after an odd number it is the text "\u0000" (an escaped backslash, then "u0000").
const SUSPECT_ESCAPE = /\\u(?:0000|d[89a-f][0-9a-f]{2})/gi;

function unstorableEscape(json: string): string | undefined {
  SUSPECT_ESCAPE.lastIndex = 0;
  for (let m = SUSPECT_ESCAPE.exec(json); m !== null; m = SUSPECT_ESCAPE.exec(json)) {
    let slashes = 0;
    for (let i = m.index - 1; i >= 0 && json.charCodeAt(i) === 92; i--) slashes++;
    if (slashes % 2 === 0) return m[0];
  }
  return undefined;
}

/** Deepest nesting of arrays and objects in JSON text, strings skipped. */
function jsonDepth(json: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < json.length; i++) {
    const c = json.charCodeAt(i);
    if (inString) {
      if (c === 92) i++;
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 91 || c === 123) max = Math.max(max, ++depth);
    else if (c === 93 || c === 125) depth--;
  }
  return max;
}

/**
 * Serialises a payload to JSON text, refusing what JSON or Postgres' jsonb would
 * silently change or reject: BigInt, functions, symbols, non-finite numbers, `Map`
 * and `Set` (JSON writes them as `{}`), cycles, `undefined` as the whole payload, the
 * NUL character, unpaired UTF-16 surrogates (in values and property names), and more
 * than {@link MAX_PAYLOAD_DEPTH} levels of nesting. Properties whose value is
 * `undefined` are left out, as JSON does.
 * @param maxBytes - largest serialised size accepted, in bytes.
 * @throws {SagaboxError} `INVALID_PAYLOAD` or `PAYLOAD_TOO_LARGE`
 */
export function encodePayload(payload: unknown, maxBytes: number, topic?: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(payload, (key, value: unknown) => {
      const t = typeof value;
      if (t === 'function' || t === 'symbol' || t === 'bigint') {
        throw payloadError(
          `payload is not JSON-serialisable: ${key === '' ? 'the payload' : `property ${JSON.stringify(key)}`} is a ${t}`,
          topic,
          { key },
        );
      }
      if (t === 'number' && !Number.isFinite(value as number)) {
        throw payloadError(`payload is not JSON-serialisable: ${String(value)} at ${JSON.stringify(key)}`, topic, { key });
      }
      if (value instanceof Map || value instanceof Set) {
        throw payloadError(
          `payload is not JSON-serialisable: ${key === '' ? 'the payload' : `property ${JSON.stringify(key)}`} is a ${value.constructor.name}, which JSON writes as {}`,
          topic,
          { key },
        );
      }
      return value;
    });
  } catch (err) {
    if (err instanceof SagaboxError) throw err;
    if (err instanceof RangeError) {
      throw payloadError(`payload is nested too deeply: more than ${MAX_PAYLOAD_DEPTH} levels of arrays and objects`, topic, { maxDepth: MAX_PAYLOAD_DEPTH }, err);
    }
    throw payloadError(`payload is not JSON-serialisable: ${(err as Error).message}`, topic, {}, err);
  }
  if (json === undefined) throw payloadError('payload is not JSON-serialisable: it is undefined', topic);
  const escape = unstorableEscape(json);
  if (escape !== undefined) {
    throw payloadError(
      escape === '\\u0000'
        ? 'payload contains a NUL character (\\u0000), which PostgreSQL jsonb cannot store'
        : `payload contains an unpaired UTF-16 surrogate (${escape}), which PostgreSQL jsonb cannot store`,
      topic,
    );
  }
  // A nesting this deep needs at least two characters per level.
  if (json.length > 2 * MAX_PAYLOAD_DEPTH && jsonDepth(json) > MAX_PAYLOAD_DEPTH) {
    throw payloadError(`payload is nested too deeply: more than ${MAX_PAYLOAD_DEPTH} levels of arrays and objects`, topic, { maxDepth: MAX_PAYLOAD_DEPTH });
  }
  const bytes = Buffer.byteLength(json);
  if (bytes > maxBytes) {
    throw new SagaboxError('PAYLOAD_TOO_LARGE', `payload is ${bytes} bytes, over the limit of ${maxBytes} bytes`, {
      details: { topic, bytes, maxBytes },
    });
  }
  return json;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * Checks and serialises message headers: a plain object of string values, names of
 * 1-255 characters, no NUL or unpaired surrogate in names or values, at most
 * {@link MAX_HEADERS_BYTES} bytes serialised.
 * @throws {SagaboxError} `INVALID_HEADERS`
 */
export function encodeHeaders(headers: unknown, topic?: string): string {
  if (headers === undefined || headers === null) return '{}';
  if (!isPlainObject(headers)) {
    throw new SagaboxError('INVALID_HEADERS', 'headers must be a plain object of string values', { details: { topic } });
  }
  for (const [name, value] of Object.entries(headers)) {
    if (name.length === 0 || name.length > 255 || !isStorableText(name)) {
      throw new SagaboxError(
        'INVALID_HEADERS',
        `header name ${JSON.stringify(name)} must be 1-255 characters without NUL or unpaired surrogates`,
        { details: { topic, header: name } },
      );
    }
    if (typeof value !== 'string' || !isStorableText(value)) {
      throw new SagaboxError(
        'INVALID_HEADERS',
        `header ${JSON.stringify(name)} must be a string without NUL or unpaired surrogates, got ${typeof value === 'string' ? 'one with such a character' : typeof value}`,
        { details: { topic, header: name } },
      );
    }
  }
  const json = JSON.stringify(headers);
  const bytes = Buffer.byteLength(json);
  if (bytes > MAX_HEADERS_BYTES) {
    throw new SagaboxError('INVALID_HEADERS', `headers are ${bytes} bytes serialised, over the limit of ${MAX_HEADERS_BYTES} bytes`, {
      details: { topic, bytes, maxBytes: MAX_HEADERS_BYTES },
    });
  }
  return json;
}

function inTimeRange(ms: number): boolean {
  return ms >= MESSAGE_TIME_RANGE.min.getTime() && ms <= MESSAGE_TIME_RANGE.max.getTime();
}

const RANGE_TEXT = `between ${MESSAGE_TIME_RANGE.min.toISOString()} and ${MESSAGE_TIME_RANGE.max.toISOString()}`;

function optionalDate(value: unknown, name: string, topic: string): Date | null {
  if (value === undefined || value === null) return null;
  if (!(value instanceof Date) || Number.isNaN(value.getTime())) throw invalid(`${name} must be a valid Date`, { topic });
  if (!inTimeRange(value.getTime())) throw invalid(`${name} must be ${RANGE_TEXT}`, { topic });
  return value;
}

function optionalMs(value: unknown, name: string, topic: string, now: number): number | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw invalid(`${name} must be a non-negative number of milliseconds`, { topic });
  }
  if (!inTimeRange(now + value)) throw invalid(`${name} puts the message's time past ${MESSAGE_TIME_RANGE.max.toISOString()}`, { topic });
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
  if (typeof id !== 'string' || !UUID.test(id)) throw invalid(`message id ${describeValue(id)} is not a UUID`, { topic });
  const key = message.key ?? null;
  if (key !== null && !isMessageLabel(key)) {
    throw invalid('key must be a string of 1-255 characters without NUL or unpaired surrogates', { topic, id });
  }
  const group = message.group ?? null;
  if (group !== null && !isMessageLabel(group)) {
    throw invalid('group must be a string of 1-255 characters without NUL or unpaired surrogates', { topic, id });
  }
  const priority = message.priority ?? 0;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < PRIORITY_RANGE.min || priority > PRIORITY_RANGE.max) {
    throw invalid(`priority must be an integer from ${PRIORITY_RANGE.min} to ${PRIORITY_RANGE.max}`, { topic, id });
  }
  const delay = optionalMs(message.delayMs, 'delayMs', topic, now);
  const ttl = optionalMs(message.ttlMs, 'ttlMs', topic, now);
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
