import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { createRelay, createWorker, publish, type Destination } from '@sagabox/core';
import { setQueueLimits } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';
import { keyOrderSink } from '../support/key-order-sink.js';

const { db, pool } = await useDatabase();
const p = pool(3);
const { track } = stopAfterEach();
const BACKLOG = 20_000;

// Tables that were never analysed (autovacuum off, or a backlog that came before the
// first analyse) have no statistics: the planner guesses that few rows match and may sort
// the whole backlog for every claim. Each claim must walk its index and stop after a batch.
// outbox and queue_messages are partitioned: storage settings go on their partitions.
for (const table of ['outbox', 'queue_messages']) {
  for (let part = 0; part < 4; part++) await p.query(`ALTER TABLE sagabox.${table}_${part} SET (autovacuum_enabled = false)`);
}

/** A pool whose connections keep every statement they were given, per connection. */
function recordingPool(): { pool: pg.Pool; sent: Map<pg.Client, (string | pg.QueryConfig)[]> } {
  const sent = new Map<pg.Client, (string | pg.QueryConfig)[]>();
  class Recording extends pg.Client {
    override query(...args: unknown[]): never {
      const first = args[0] as string | pg.QueryConfig;
      if (typeof first === 'string' || typeof first?.text === 'string') {
        const list = sent.get(this) ?? [];
        list.push(first);
        sent.set(this, list);
      }
      return (super.query as (...a: unknown[]) => never)(...args);
    }
  }
  const rp = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: 10_000, Client: Recording });
  rp.on('error', () => {});
  return { pool: rp, sent };
}

/** A claim as sent: its plan, whether its transaction asked for the index walk, and whether it was the limited claim. */
interface Claim { plan: PlanNode; byIndex: boolean; limited: boolean }
interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Shared Hit Blocks'?: number; Plans?: PlanNode[] }
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

/**
 * Each claim (a statement with SKIP LOCKED on `table`) recorded on the pool's
 * connections, explained after the statements its transaction ran before it, as they
 * were sent; the transaction is rolled back.
 */
async function explainClaims(sent: Map<pg.Client, (string | pg.QueryConfig)[]>, table: string): Promise<Claim[]> {
  const plans: Claim[] = [];
  const text = (s: string | pg.QueryConfig): string => (typeof s === 'string' ? s : s.text);
  const c = await p.connect();
  try {
    for (const list of sent.values()) {
      for (let i = 0; i < list.length; i++) {
        // Claims (they lease), not the worker's sweeps of scheduled and held rows (which lock rows too).
        const sql = text(list[i]!);
        if (!/SKIP LOCKED/.test(sql) || !sql.includes(`sagabox".${table}`) || (table === 'queue_messages' && !sql.includes('SET lease_token'))) continue;
        // What its transaction ran before it (nothing when the claim ran on its own).
        const earlier = list.slice(0, i).map(text);
        const begin = earlier.lastIndexOf('BEGIN');
        const open = begin >= 0 && !earlier.slice(begin).some((t) => t === 'COMMIT' || t === 'ROLLBACK');
        const before = open ? earlier.slice(begin + 1) : [];
        await c.query('BEGIN');
        try {
          for (const statement of before) await c.query(statement);
          const claim = list[i] as pg.QueryConfig;
          const { rows } = await c.query<{ 'QUERY PLAN': [{ Plan: PlanNode; JIT?: unknown }] }>({
            text: `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${claim.text}`,
            values: claim.values,
          });
          const explained = rows[0]!['QUERY PLAN'][0];
          // A claim is short: compiling it (JIT) would cost more than running it.
          expect(explained.JIT).toBeUndefined();
          plans.push({ plan: explained.Plan, byIndex: before.some((t) => t.includes('enable_sort')), limited: claim.text.includes('flow_grant') });
        } finally {
          await c.query('ROLLBACK');
        }
      }
    }
  } finally {
    c.release();
  }
  return plans;
}

/** Asserts that no claim read the table whole: no sequential or bitmap scan of it, no sort of its rows, few pages. */
function expectIndexWalks(claims: Claim[], table: string): void {
  expect(claims.length).toBeGreaterThan(0);
  for (const { plan } of claims) {
    const all = nodes(plan);
    // A partitioned table is scanned in its partitions (queue_messages_0, ...).
    const ofTable = (n: PlanNode): boolean => n['Relation Name'] === table || new RegExp(`^${table}_\\d+$`).test(n['Relation Name'] ?? '');
    const scans = all.filter(ofTable).map((n) => n['Node Type']);
    expect(scans.length).toBeGreaterThan(0);
    expect(scans).not.toContain('Seq Scan');
    expect(scans).not.toContain('Bitmap Heap Scan');
    // The limited claim sorts its batch (row_number over the candidates), never the table.
    const sortsOfTable = all.filter((n) => n['Node Type'] === 'Sort' && nodes(n).some(ofTable));
    expect(sortsOfTable).toEqual([]);
    // A scan and sort of the backlog reads every row and its head-of-key probe: tens of thousands of pages.
    expect(plan['Shared Hit Blocks'] ?? 0).toBeLessThan(5_000);
  }
}

/**
 * Runs a worker on `queue` over a recording pool until it handled 200 messages, and
 * returns the claims it sent, explained. Claims of up to 2 x 100 rows, which the hits
 * bound of expectIndexWalks is set for.
 */
async function workerClaims(queue: string): Promise<Claim[]> {
  const { pool: rp, sent } = recordingPool();
  try {
    let handled = 0;
    const worker = track(createWorker({
      pool: rp, queue, listen: false, concurrency: 2, pollIntervalMs: 20, maxBatchSize: 100,
      handler: async () => {
        handled++;
      },
    }));
    await worker.start();
    await waitFor('a few claims handled', () => handled >= 200, 20_000);
    await worker.stop();
    return await explainClaims(sent, 'queue_messages');
  } finally {
    await rp.end();
  }
}

describe('claims on tables never analysed', () => {
  it('the relay claims from a backlog of 20,000 by walking the outbox in seq order', async () => {
    for (let n = 0; n < BACKLOG; n += 1_000) {
      await publish(p, Array.from({ length: 1_000 }, (_, j) => ({
        topic: 'orders.placed', key: j % 3 === 0 ? null : `order-${(n + j) % 500}`, payload: { n: n + j },
      })), { notify: false });
    }
    const { rows } = await p.query<{ reltuples: number }>(
      `SELECT c.reltuples FROM pg_partition_tree('sagabox.outbox') t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`,
    );
    expect(rows.map((r) => r.reltuples)).toEqual([-1, -1, -1, -1]);
    const sink: Destination = { name: 'sink', external: true, matches: () => true, async deliver() {} };
    const { pool: rp, sent } = recordingPool();
    try {
      const relay = track(createRelay({ pool: rp, destinations: [sink], listen: false }));
      expect(await relay.runOnce()).toBeGreaterThan(0);
      const claims = await explainClaims(sent, 'outbox');
      expect(claims.every((cl) => cl.byIndex)).toBe(true);
      expectIndexWalks(claims, 'outbox');
    } finally {
      await rp.end();
    }
  });

  it('the worker claims a backlog of 20,000 by walking its claim index once it has seen it, unlimited and limited claims alike', async () => {
    // Priority aging is due on the first claim: the worker claims with both statements.
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('backlog')`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, key, payload, created_at)
       SELECT 'backlog', gen_random_uuid(), 'job', CASE WHEN g % 3 = 0 THEN NULL ELSE 'k' || (g % 500) END, jsonb_build_object('n', g), now()
       FROM generate_series(1, $1::int) g`,
      [BACKLOG],
    );
    const { rows } = await p.query<{ reltuples: number }>(
      `SELECT c.reltuples FROM pg_partition_tree('sagabox.queue_messages') t JOIN pg_class c ON c.oid = t.relid WHERE t.isleaf`,
    );
    expect(rows.map((r) => r.reltuples)).toEqual([-1, -1, -1, -1]);
    const unlimited = await workerClaims('backlog');
    // Only the claims before the worker saw a full one are planned as the planner likes:
    // each slot's first and the one that found the backlog.
    const byIndex = unlimited.filter((cl) => cl.byIndex);
    expect(unlimited.length - byIndex.length).toBeLessThanOrEqual(3);
    expect(byIndex.length).toBeGreaterThan(unlimited.length - byIndex.length);
    expect(byIndex.every((cl) => !cl.limited)).toBe(true);
    expectIndexWalks(byIndex, 'queue_messages');
    // A limit that never binds: the worker claims with the limited statement.
    await setQueueLimits(p, 'backlog', { maxInFlight: 1_000 });
    const limited = (await workerClaims('backlog')).filter((cl) => cl.limited);
    expect(limited.length).toBeGreaterThan(0);
    expect(limited.every((cl) => cl.byIndex)).toBe(true);
    expectIndexWalks(limited, 'queue_messages');
  });
});

// The claims merge the four ring slots in claim order, and a merge reads the first
// passing row of every slot before it returns one. When every row of a slot waits behind
// its key's head in another slot (a keyed backlog spanning slots, as any backlog older
// than a second does), a head-of-key test inside the slot's scan read that slot whole at
// every claim: tens of thousands of probes for a batch of 100.
describe('claims of a keyed backlog that spans the ring slots', () => {
  // The first HEADS rows (every key's first rows) in slot 3, the later ones in slots 0-2.
  const HEADS = 1_000;
  const slotOf = `CASE WHEN g <= ${HEADS} THEN 3 ELSE g % 3 END::smallint`;
  const key = `'order-' || (g % 500)`;

  it('the relay reads about a batch of the outbox per claim, and delivers each key in order', async () => {
    await p.query(
      `INSERT INTO sagabox.outbox (id, part, topic, key, payload)
       SELECT gen_random_uuid(), ${slotOf}, 'orders.placed', ${key}, jsonb_build_object('n', g)
       FROM generate_series(1, $1::int) g ORDER BY g`,
      [BACKLOG],
    );
    await p.query('ANALYZE sagabox.outbox');
    const { sink, outOfOrder } = keyOrderSink();
    const { pool: rp, sent } = recordingPool();
    try {
      const relay = track(createRelay({ pool: rp, destinations: [sink], listen: false, batchSize: 100 }));
      let delivered = 0;
      for (let i = 0; i < 3; i++) delivered += await relay.runOnce();
      expect(delivered).toBe(300);
      expect(outOfOrder()).toBe(0);
      const claims = await explainClaims(sent, 'outbox');
      expect(claims.length).toBeGreaterThanOrEqual(3);
      expectIndexWalks(claims, 'outbox');
    } finally {
      await rp.end();
    }
  });

  it('the worker reads about a batch of the queue per claim, unlimited and limited claims alike', async () => {
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('spread')`);
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, part, topic, key, payload, created_at)
       SELECT 'spread', gen_random_uuid(), ${slotOf}, 'job', ${key}, jsonb_build_object('n', g), now()
       FROM generate_series(1, $1::int) g ORDER BY g`,
      [BACKLOG],
    );
    await p.query('ANALYZE sagabox.queue_messages');
    const unlimited = await workerClaims('spread');
    expect(unlimited.every((cl) => !cl.limited)).toBe(true);
    expectIndexWalks(unlimited.filter((cl) => cl.byIndex), 'queue_messages');
    // A limit that never binds: the worker claims with the limited statement.
    await setQueueLimits(p, 'spread', { maxInFlight: 1_000 });
    const limited = (await workerClaims('spread')).filter((cl) => cl.limited);
    expect(limited.length).toBeGreaterThan(0);
    expectIndexWalks(limited, 'queue_messages');
  });
});
