import type pg from 'pg';
import type { Destination, RelayedMessage } from './destination.js';
import { InvalidOptionsError } from '../shared/errors.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { prepared } from '../shared/prepared.js';
import { queueChannel } from '../shared/channels.js';
import { claimRankFrom } from '../shared/claim-rank.js';
import { heldFrom } from '../shared/held.js';
import { scheduledFrom } from '../shared/scheduled.js';
import { statementsFor } from '../shared/statements.js';
import { topicMatcher, validateQueueName } from '../publish/topic-name.js';

/**
 * Registers queues by name (a row in `queues` each, kept if it exists), so admins see
 * empty ones; used by the queue destination's and the worker's start.
 */
export async function registerQueues(db: pg.Pool | pg.ClientBase, schema: string, names: readonly string[]): Promise<void> {
  await db.query(destinationSql(schema).ensureQueues, [[...new Set(names)]]);
}

// The queue destination's statements, for the schema of the queues' database.
const destinationSql = statementsFor((s) => ({
  // Registers the queues the routes name: $1 their names.
  ensureQueues: `INSERT INTO ${s}.queues (name) SELECT unnest($1::text[]) ON CONFLICT (name) DO NOTHING`,
  // One row per (queue, message): $1-$9 and $11-$13 one array per column, $10 the queue
  // channel; $13 counts the earlier rows of the batch with the row's queue and group (for
  // `held`, see held.ts). Rows are inserted in array order, so within a batch seq follows
  // the outbox's seq. ON CONFLICT makes a repeated delivery (the relay died before
  // deleting its outbox rows) a no-op. One NOTIFY per queue per batch wakes that queue's
  // workers.
  enqueue: `
    WITH inserted AS (
      INSERT INTO ${s}.queue_messages (queue, id, part, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key, scheduled, claim_rank, held)
      SELECT t.q, t.id, ${s}.queue_part(t.id), t.topic, t.key, t.payload, t.headers, coalesce(t.run_at, now()), t.expires_at, t.created_at,
             t.priority, t.group_key, ${scheduledFrom('t.run_at')}, ${claimRankFrom(s, 't.q', 't.priority', 'coalesce(t.run_at, t.created_at)')},
             ${heldFrom(s, null, 't.q', 't.group_key', 't.earlier')}
      FROM unnest($1::text[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[],
                  $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $11::smallint[], $12::text[], $13::int[])
        AS t(q, id, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key, earlier)
      ON CONFLICT (queue, id, part) DO NOTHING
      RETURNING queue
    )
    SELECT queue, pg_notify($10::text, queue) FROM (SELECT DISTINCT queue FROM inserted) d`,
}));

/** A route: messages whose topic matches `topic` (exact, `*` one segment, `#` any segments) go to `queue`. */
export interface QueueRoute {
  /** Topic pattern: segments split by `.`, `*` matches one segment, `#` any number. */
  topic: string;
  /** The queue that receives the matching messages. */
  queue: string;
}

/** Options of {@link createQueueDestination}. */
export interface QueueDestinationOptions {
  /** Topic patterns to queues. A topic matching several routes is copied to each queue (fan-out). */
  routes: readonly QueueRoute[];
  /**
   * The database of the queues, when it is not the outbox's. Omit it for queues in the
   * outbox's database: delivery then happens inside the relay's transaction.
   */
  pool?: pg.Pool;
  /** sagabox schema in the queues' database. Default `'sagabox'`. */
  schema?: string;
  /** Name for logs. Default `'queues'` (or `'remote-queues'` with a pool). */
  name?: string;
}

/**
 * A destination that writes messages into sagabox queues, routed by topic. Delivery is
 * idempotent by (queue, message id); each batch wakes the queues' workers with one
 * NOTIFY per queue.
 *
 * @example
 * const relay = createRelay({
 *   pool: ordersDb,
 *   destinations: [createQueueDestination({ pool: billingDb, routes: [{ topic: 'orders.*', queue: 'billing' }] })],
 * });
 */
export function createQueueDestination(options: QueueDestinationOptions): Destination {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionsError('queue destination', ['options must be an object with routes']);
  const problems: string[] = [];
  let schema = DEFAULT_SCHEMA;
  try {
    schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  const routes: { match: (topic: string) => boolean; queue: string }[] = [];
  if (!Array.isArray(options.routes) || options.routes.length === 0) problems.push('routes must be a non-empty array');
  if (options.pool !== undefined && typeof options.pool?.connect !== 'function') problems.push('pool must be a pg.Pool');
  for (const [i, r] of (Array.isArray(options.routes) ? options.routes : []).entries()) {
    try {
      if (typeof r !== 'object' || r === null) throw new Error('must be an object { topic, queue }');
      routes.push({ match: topicMatcher(r.topic), queue: validateQueueName(r.queue) });
    } catch (err) {
      problems.push(`routes[${i}]: ${(err as Error).message}`);
    }
  }
  if (problems.length > 0) throw new InvalidOptionsError('queue destination', problems);
  const sql = destinationSql(schema);
  const queuesOf = new Map<string, string[]>();
  const route = (topic: string): string[] => {
    let qs = queuesOf.get(topic);
    if (!qs) {
      qs = [...new Set(routes.filter((r) => r.match(topic)).map((r) => r.queue))];
      if (queuesOf.size < 10_000) queuesOf.set(topic, qs);
    }
    return qs;
  };
  const remote = options.pool;

  return {
    name: options.name ?? (remote ? 'remote-queues' : 'queues'),
    // Queues in another database are written through their own pool, not the relay's transaction.
    external: remote !== undefined,
    matches: (topic) => route(topic).length > 0,
    async start({ pool }) {
      // Queues exist before the first message, so admins see empty ones.
      await registerQueues(remote ?? pool, schema, routes.map((r) => r.queue));
    },
    async deliver(messages: readonly RelayedMessage[], { client }) {
      const cols: unknown[][] = [[], [], [], [], [], [], [], [], []];
      const priorities: number[] = [];
      const groups: (string | null)[] = [];
      const earlier: number[] = [];
      const seen = new Map<string, number>();
      for (const m of messages) {
        for (const q of route(m.topic)) {
          cols[0]!.push(q);
          cols[1]!.push(m.id);
          cols[2]!.push(m.topic);
          cols[3]!.push(m.key);
          cols[4]!.push(m.payload);
          cols[5]!.push(m.headers);
          cols[6]!.push(m.runAt);
          cols[7]!.push(m.expiresAt);
          cols[8]!.push(m.createdAt);
          priorities.push(m.priority ?? 0);
          groups.push(m.group ?? null);
          if (m.group === null || m.group === undefined) {
            earlier.push(0);
          } else {
            const at = `${q}\0${m.group}`;
            const n = seen.get(at) ?? 0;
            earlier.push(n);
            seen.set(at, n + 1);
          }
        }
      }
      if (cols[0]!.length === 0) return;
      await (remote ?? client).query(prepared(sql.enqueue, [...cols, queueChannel(schema), priorities, groups, earlier]));
    },
  };
}

/** The queue names a set of routes mentions (for creating them up front). */
export function routeQueues(routes: readonly QueueRoute[]): string[] {
  return [...new Set(routes.map((r) => r.queue))];
}
