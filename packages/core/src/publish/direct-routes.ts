import { toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';
import { heldWindowOf } from '../shared/held.js';
import { topicPatternRegex, validateQueueName } from './topic-name.js';
import type { AdminOptions } from '../admin/admin.js';
import type { QueueRoute } from '../relay/create-queue-destination.js';

/** A direct route as stored: a topic pattern, its queue, and when it was added. */
export interface DirectRoute extends QueueRoute {
  /** When the route was added. */
  createdAt: Date;
}

/**
 * Routes a topic pattern straight to a queue in the same database, at publish time.
 *
 * From the commit of this call on, `publish` writes messages whose topic matches
 * (`orders.created`, `orders.*` one segment, `orders.#` any number) into `queue` in the
 * producer's own transaction, instead of into the outbox: one hop instead of two, no
 * relay in the path, and the worker is woken by the producer's NOTIFY. The guarantees
 * are the outbox's: the queue row commits or rolls back with the caller's writes,
 * messages of one key are handled in commit order, and publishing an id that is still
 * queued is a no-op.
 *
 * A topic that matches at least one direct route goes only to the queues of its
 * direct routes, never to the outbox; route a topic through the relay instead when it
 * must also reach another database or a broker. Half messages (`prepare`) always go
 * through the outbox and the relay. Creates the queue when it does not exist. Adding
 * a route that exists is a no-op.
 *
 * A schema's first direct route turns on the route check that every publish then runs
 * (until then publish skips it). Adding it waits for the transactions that have
 * published to end, and publishes wait behind it, in attempts of 100 ms with as long
 * between them; when a long transaction that published stays open through 50
 * attempts, the call fails with PostgreSQL's `lock_not_available` (55P03). Later routes
 * wait for nothing. The caller's role needs INSERT on `direct_routes` and `queues`; the
 * table's partition is created by a SECURITY DEFINER function, `direct_routes_partition`.
 *
 * @throws {SagaboxError} `INVALID_TOPIC` for a malformed pattern, `INVALID_QUEUE_NAME`.
 * @example
 * await addDirectRoute(pool, { topic: 'orders.*', queue: 'billing' });
 * await publish(trx, { topic: 'orders.created', payload }); // lands in 'billing' at commit
 */
export async function addDirectRoute(db: Executor, route: QueueRoute, options: AdminOptions = {}): Promise<void> {
  const regex = topicPatternRegex(route?.topic);
  const queue = validateQueueName(route.queue);
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const run = toRunQuery(db);
  await run(`SELECT ${s}.direct_routes_partition($1, $2)`, [FIRST_ROUTE_WAIT_MS, FIRST_ROUTE_ATTEMPTS]);
  await run(
    `WITH q AS (INSERT INTO ${s}.queues (name) VALUES ($2) ON CONFLICT (name) DO NOTHING)
     INSERT INTO ${s}.direct_routes (pattern, queue, topic_regex, held_window)
     VALUES ($1, $2, $3, (SELECT ${heldWindowOf('hq')} FROM ${s}.queues hq WHERE hq.name = $2))
     ON CONFLICT (pattern, queue) DO NOTHING`,
    [route.topic, queue, regex],
  );
}

// The first route of a schema creates direct_routes' partition, which waits for the
// transactions that have published to end while new publishes wait behind it (see
// direct_routes_partition in the migration): in short attempts, so publishers stall
// briefly. Later calls find the partition and return at once.
const FIRST_ROUTE_WAIT_MS = 100;
const FIRST_ROUTE_ATTEMPTS = 50;

/**
 * Removes a direct route; messages of its topic published after the commit go to the
 * outbox again (or to the queues of other direct routes that still match). Messages
 * already queued stay queued. Resolves to whether the route existed.
 * @throws {SagaboxError} `INVALID_TOPIC`, `INVALID_QUEUE_NAME`.
 * @example await removeDirectRoute(pool, { topic: 'orders.*', queue: 'billing' });
 */
export async function removeDirectRoute(db: Executor, route: QueueRoute, options: AdminOptions = {}): Promise<boolean> {
  topicPatternRegex(route?.topic);
  const queue = validateQueueName(route.queue);
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)(
    `DELETE FROM ${s}.direct_routes WHERE pattern = $1 AND queue = $2 RETURNING 1`,
    [route.topic, queue],
  );
  return rows.length > 0;
}

/**
 * Every direct route, ordered by pattern and queue.
 * @example const routes = await listDirectRoutes(pool); // [{ topic: 'orders.*', queue: 'billing', createdAt }]
 */
export async function listDirectRoutes(db: Executor, options: AdminOptions = {}): Promise<DirectRoute[]> {
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const rows = await toRunQuery(db)<{ pattern: string; queue: string; created_at: Date }>(
    `SELECT pattern, queue, created_at FROM ${s}.direct_routes ORDER BY pattern, queue`,
    [],
  );
  return rows.map((r) => ({ topic: r.pattern, queue: r.queue, createdAt: r.created_at }));
}
