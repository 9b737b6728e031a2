import pg from 'pg';
import { INSERT_ORDER_SQL } from './databases.js';
import { preciseNow } from './latency.js';
import type { Publisher } from './variant.js';

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** What an open-loop producer offered and got committed. */
export interface OpenLoopResult {
  offered: number;
  committed: number;
  producingMs: number;
}

/** `size` connections to `url` handed out one transaction at a time: `acquire` waits for an idle one. */
export interface ProducerConnections {
  clients: pg.Client[];
  acquire: () => Promise<pg.Client>;
  release: (client: pg.Client) => void;
}

/** Opens the connections of an open-loop producer (see {@link openLoop}). */
export async function openProducerConnections(url: string, size: number): Promise<ProducerConnections> {
  const clients = await Promise.all(
    Array.from({ length: size }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  const idle = [...clients];
  const waiters: ((client: pg.Client) => void)[] = [];
  return {
    clients,
    acquire: () => {
      const client = idle.pop();
      return client !== undefined ? Promise.resolve(client) : new Promise((resolve) => waiters.push(resolve));
    },
    release: (client) => {
      const waiter = waiters.shift();
      if (waiter !== undefined) waiter(client);
      else idle.push(client);
    },
  };
}

/**
 * One producer transaction: BEGIN; INSERT INTO orders (`label`, n); publish n; COMMIT.
 * On failure it rolls back and rethrows.
 */
export async function produceOne(client: pg.Client, publisher: Publisher, label: string, n: number): Promise<void> {
  try {
    await client.query('BEGIN');
    await client.query(INSERT_ORDER_SQL, [label, n]);
    await publisher.publish(client, n);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/**
 * Open-loop producer: transaction n is due at t0 + (n - 1) / rate and starts then on
 * any idle one of `producers` connections (later when all are busy: a producer that
 * falls behind shows as a lower achieved rate and as latency, since latency counts from
 * the due time). Each transaction is BEGIN; INSERT INTO orders; publish; COMMIT. No
 * transaction starts after `durationMs`.
 */
export async function openLoop(
  url: string,
  publisher: Publisher,
  rate: number,
  durationMs: number,
  onCommitted: (n: number, dueWall: number, commitWall: number) => void,
  producers = 4,
): Promise<OpenLoopResult> {
  const { clients, acquire, release } = await openProducerConnections(url, producers);
  const intervalMs = 1000 / rate;
  const inFlight = new Set<Promise<void>>();
  let producerError: unknown;
  let committed = 0;
  let offered = 0;
  const t0 = performance.now();
  const end = t0 + durationMs;
  try {
    for (let n = 1; producerError === undefined; n += 1) {
      const due = t0 + (n - 1) * intervalMs;
      if (due >= end) break;
      offered = n;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const client = await acquire();
      if (performance.now() >= end) {
        release(client);
        break;
      }
      const txn = (async () => {
        try {
          await produceOne(client, publisher, 'storage', n);
          committed += 1;
          onCommitted(n, performance.timeOrigin + due, preciseNow());
        } catch (error) {
          producerError ??= error;
        } finally {
          release(client);
        }
      })();
      inFlight.add(txn);
      void txn.then(() => inFlight.delete(txn));
    }
    await Promise.all(inFlight);
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  if (producerError !== undefined) throw producerError;
  return { offered, committed, producingMs: durationMs };
}
