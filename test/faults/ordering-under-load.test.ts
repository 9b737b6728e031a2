import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createRelay, createWorker, publish, type Relay, type Worker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const admin = pool(4);
// Counters per run: the second test counts what its own producers committed, whatever the
// first left behind (a first run that timed out on a loaded machine went on producing).
await admin.query(`CREATE TABLE key_counters (run text, key text, n int NOT NULL DEFAULT 0, PRIMARY KEY (run, key))`);
await admin.query(`CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, message_id uuid NOT NULL, key text NOT NULL, n int NOT NULL, run text NOT NULL)`);

const KEYS = Array.from({ length: 50 }, (_, i) => `key-${i}`);
await admin.query(`INSERT INTO key_counters (run, key) SELECT r, k FROM unnest($1::text[]) k, unnest(ARRAY['big', 'cut']) r`, [KEYS]);

/**
 * Producers number each key's messages in commit order: the counter row is locked by
 * the UPDATE until commit, so n follows commit order per key. Handlers append (key, n)
 * in handling order; per key, n must come out 1, 2, 3 ... with no gap and no repeat.
 */
async function produce(p: pg.Pool, run: string, txns: number, perTxn: number, stop?: () => boolean): Promise<number> {
  let sent = 0;
  for (let t = 0; t < txns && !stop?.(); t++) {
    const keys = [...new Set(Array.from({ length: perTxn }, () => KEYS[Math.floor(Math.random() * KEYS.length)]!))].sort();
    const c = await p.connect();
    const ignore = (): void => {}; // a cut connection surfaces through the next query
    c.on('error', ignore);
    try {
      await c.query('BEGIN');
      // Lock the counters in key order first: an UPDATE ... FROM locks rows in whatever
      // order its plan visits them, and two producers with overlapping keys then
      // deadlock now and then (seen once in CI).
      const { rows } = await c.query<{ key: string; n: number }>(
        `WITH locked AS MATERIALIZED (SELECT key FROM key_counters WHERE run = $2 AND key = ANY($1::text[]) ORDER BY key FOR UPDATE)
         UPDATE key_counters k SET n = k.n + 1 FROM locked WHERE k.run = $2 AND k.key = locked.key RETURNING k.key, k.n`, [keys, run]);
      rows.sort((a, b) => a.key.localeCompare(b.key));
      await publish(c, rows.map((r) => ({ topic: `load.${run}`, key: r.key, payload: { key: r.key, n: r.n, run } })));
      await c.query('COMMIT');
      sent += rows.length;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      // A cut connection: that transaction did not happen (its counter update rolled back too).
      if (!stop) throw err;
    } finally {
      c.off('error', ignore);
      c.release();
    }
  }
  return sent;
}

const handler = (run: string) => async (m: { id: string; payload: unknown }, { client }: { client: pg.PoolClient }) => {
  const { key, n } = m.payload as { key: string; n: number };
  await client.query('INSERT INTO effects (message_id, key, n, run) VALUES ($1, $2, $3, $4)', [m.id, key, n, run]);
};

async function checkRun(run: string, expected: number): Promise<void> {
  expect(await count(`SELECT count(*) AS n FROM effects WHERE run = $1`, [run])).toBe(expected);
  expect(await count(`SELECT count(DISTINCT message_id) AS n FROM effects WHERE run = $1`, [run])).toBe(expected);
  // Per key, handling order equals commit order: n is 1..N in seq order.
  const { rows } = await admin.query<{ key: string; ns: number[] }>(
    `SELECT key, array_agg(n ORDER BY seq) AS ns FROM effects WHERE run = $1 GROUP BY key`, [run]);
  for (const r of rows) {
    const first = r.ns[0]!;
    expect(r.ns, `order of ${r.key}`).toEqual(r.ns.map((_, i) => first + i));
  }
}

function startAll(run: string, relays: number, workers: number): { all: (Relay | Worker)[]; start: () => Promise<void>; stop: () => Promise<void> } {
  const all: (Relay | Worker)[] = [];
  for (let i = 0; i < relays; i++) all.push(createRelay({ pool: pool(4), name: `${run}-r${i}`, routes: [{ topic: `load.${run}`, queue: `load-${run}` }], batchSize: 100, pollIntervalMs: 100 }));
  for (let i = 0; i < workers; i++) {
    all.push(createWorker({ pool: pool(4), name: `${run}-w${i}`, queue: `load-${run}`, handler: handler(run), concurrency: 2, batchSize: 25, leaseMs: 2_000, pollIntervalMs: 100 }));
  }
  return { all, start: async () => { for (const x of all) await x.start(); }, stop: async () => { await Promise.all(all.map((x) => x.stop())); } };
}

describe('ordering and exactly-once under load', () => {
  it('20,000 messages over 50 keys, 4 producers, 3 relays, 4 workers: every effect once, per key in commit order', async () => {
    const system = startAll('big', 3, 4);
    await system.start();
    const producers = [1, 2, 3, 4].map(() => produce(pool(2), 'big', 1_000, 5));
    const sent = (await Promise.all(producers)).reduce((a, b) => a + b, 0);
    expect(sent).toBeGreaterThan(15_000);
    await waitFor('all handled', async () => (await count(`SELECT count(*) AS n FROM effects WHERE run = 'big'`)) >= sent, 120_000, 200);
    await system.stop();
    await checkRun('big', sent);
  }, 180_000);

  it('connections cut again and again while producers, 2 relays and 3 workers run: all recover, nothing lost or doubled', async () => {
    const system = startAll('cut', 2, 3);
    await system.start();
    let stopProducing = false;
    const producers = [1, 2].map(() => produce(pool(2), 'cut', 100_000, 3, () => stopProducing));
    for (let i = 0; i < 4; i++) {
      await new Promise((r) => setTimeout(r, 400));
      // Every session on this database except ours: relays, workers, LISTEN sessions, producers.
      await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`);
    }
    await new Promise((r) => setTimeout(r, 400));
    stopProducing = true;
    const sent = (await Promise.all(producers)).reduce((a, b) => a + b, 0);
    // Count what really committed (a commit whose answer was cut off may or may not have happened).
    const committed = await count(`SELECT sum(n) AS n FROM key_counters WHERE run = 'cut'`);
    expect(sent).toBeGreaterThan(0);
    await waitFor('all handled after cuts', async () =>
      (await count(`SELECT count(*) AS n FROM sagabox.outbox`)) === 0 &&
      (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'load-cut'`)) === 0, 60_000, 200);
    await system.stop();
    await checkRun('cut', committed);
  }, 120_000);
});
