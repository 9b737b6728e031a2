import type pg from 'pg';
import type { SagaboxError } from '../shared/errors.js';

/**
 * A message as the relay hands it to a destination. `payload` and `headers` are the
 * JSON text stored in the outbox, passed through unparsed.
 */
export interface RelayedMessage {
  /** Outbox sequence number (database-assigned order), as a decimal string. */
  seq: string;
  /** The message id; a destination should pass it on so the receiver can deduplicate. */
  id: string;
  /** The topic it was published under. */
  topic: string;
  /** Ordering key, or null. */
  key: string | null;
  /** JSON text of the payload. */
  payload: string;
  /** JSON text of the headers object. */
  headers: string;
  /** When consumers may handle it (delayed messages), or null for now. */
  runAt: Date | null;
  /** When it expires undelivered (from `ttlMs`/`expiresAt` at publish), or null. */
  expiresAt: Date | null;
  /** Failed delivery attempts so far. */
  attempts: number;
  /** When the producer published it. */
  createdAt: Date;
  /** Priority given at publish (0 by default); higher is handled first. */
  priority: number;
  /** Flow-control group given at publish, or null. */
  group: string | null;
}

/** What a destination gets besides the messages. */
export interface DeliveryContext {
  /**
   * The relay's connection to the outbox database, inside the transaction that holds
   * the claimed rows. A destination in the same database writes through it, so the
   * delivery and the removal from the outbox commit together.
   */
  client: pg.PoolClient;
}

/**
 * Where the relay moves messages: a Postgres queue (same or another database), a
 * broker, an HTTP endpoint. `deliver` must be idempotent by message id (the relay may
 * deliver a message again if it dies between delivering and removing it from the
 * outbox), and must either deliver all `messages` or throw. On a throw the relay
 * retries the batch one message at a time to find the failing one, and counts an
 * attempt against each message that still fails (retried with backoff, then
 * dead-lettered with the error). A destination that cannot reach its target at all (a
 * broker down) throws a {@link SagaboxError} with code `BROKER_UNREACHABLE`
 * instead: the relay then rolls the whole batch back without counting attempts and
 * backs off, so an outage of any length loses and dead-letters nothing.
 *
 * @example
 * const logDestination: Destination = {
 *   name: 'log',
 *   matches: (topic) => topic.startsWith('audit.'),
 *   async deliver(messages) { for (const m of messages) await appendToAuditLog(m.id, m.payload); },
 * };
 */
export interface Destination {
  /** A short name for logs and metrics. */
  readonly name: string;
  /** Whether messages of this topic go to this destination. */
  matches(topic: string): boolean;
  /**
   * True when `deliver` writes nothing through `context.client` (a broker, an HTTP
   * endpoint): the relay then calls it without a savepoint around it, two round trips
   * fewer per batch. Default false.
   */
  readonly external?: boolean;
  /** Delivers the whole batch or throws; must be idempotent by message id. */
  deliver(messages: readonly RelayedMessage[], context: DeliveryContext): Promise<void>;
  /** Called by the relay's `start` (create queues, open connections); `pool` is the relay's outbox pool. */
  start?(context: { pool: pg.Pool }): Promise<void>;
  /** Called by the relay's `stop`. */
  stop?(): Promise<void>;
}
