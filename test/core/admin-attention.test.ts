import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { prepare, publish, SagaboxError } from '@sagabox/core';
import { addDirectRoute, needsAttention } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';

const { db, pool } = await useDatabase();
const p = pool(4);
await addDirectRoute(p, { topic: 'att.#', queue: 'att' });

describe('needsAttention', () => {
  it('is empty on a healthy database', async () => {
    await publish(p, { topic: 'att.ok', payload: {} });
    const report = await needsAttention(p, { vacuumBlockedAfterMs: 3_600_000_000 });
    expect(report).toMatchObject({ leaseExpired: [], nearMaxAttempts: [], sagasPastDeadline: [], halfMessagesPastCheck: [], vacuum: { blocked: false }, beyondScan: { queues: [], outbox: false }, total: 0 });
    await p.query(`DELETE FROM sagabox.queue_messages`);
  });

  it('lists expired leases, messages near maxAttempts, sagas past their deadline, half messages past their check, blocked vacuum', async () => {
    const { ids: [stuck, failing, fine] } = await publish(p, [
      { topic: 'att.a', payload: {} }, { topic: 'att.b', payload: {} }, { topic: 'att.c', payload: {} },
    ]);
    await p.query(`UPDATE sagabox.queue_messages SET lease_token = gen_random_uuid(), locked_until = now() - interval '2 minutes', locked_by = 'worker-dead' WHERE id = $1`, [stuck]);
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 4, last_error = 'boom', run_at = now() + interval '1 minute' WHERE id = $1`, [failing]);
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 2 WHERE id = $1`, [fine]);
    // A relay delivery failing towards its own maxAttempts (20 by default), and one far from it.
    const { ids: [undeliverable, retried] } = await publish(p, [{ topic: 'elsewhere.a', payload: {} }, { topic: 'elsewhere.b', payload: {} }]);
    await p.query(`UPDATE sagabox.outbox SET attempts = 19, last_error = 'broker down', available_at = now() + interval '1 minute' WHERE id = $1`, [undeliverable]);
    await p.query(`UPDATE sagabox.outbox SET attempts = 3 WHERE id = $1`, [retried]);
    const late = randomUUID();
    const onTime = randomUUID();
    await p.query(
      `INSERT INTO sagabox.sagas (id, saga_type, saga_version, status, current_step, state, deadline) VALUES
         ($1, 'order', 1, 'running', 2, '{}', now() - interval '5 minutes'),
         ($2, 'order', 1, 'running', 0, '{}', now() + interval '5 minutes'),
         ($3, 'order', 1, 'completed', 3, '{}', now() - interval '1 hour')`,
      [late, onTime, randomUUID()],
    );
    const half = await prepare(p, { topic: 'elsewhere.pay', payload: {} }, { checkAfterMs: 0 });
    await prepare(p, { topic: 'elsewhere.pay', payload: {} }, { checkAfterMs: 600_000 });

    // A session holding a snapshot blocks vacuum.
    const holder = new pg.Client({ connectionString: db.url, application_name: 'attention-test-holder' });
    await holder.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query('SELECT 1');
      const report = await needsAttention(p, { maxAttempts: 5, attemptsLeft: 1, vacuumBlockedAfterMs: 0 });
      expect(report.leaseExpired.map((m) => [m.id, m.lockedBy])).toEqual([[stuck, 'worker-dead']]);
      expect(report.nearMaxAttempts.map((m) => [m.id, m.queue, m.attempts, m.lastError])).toEqual([
        [failing, 'att', 4, 'boom'], [undeliverable, null, 19, 'broker down'],
      ]);
      expect(report.sagasPastDeadline).toHaveLength(1);
      expect(report.sagasPastDeadline[0]).toMatchObject({ id: late, type: 'order', status: 'running', step: 2 });
      expect(report.sagasPastDeadline[0]!.overdueMs).toBeGreaterThanOrEqual(290_000);
      expect(report.halfMessagesPastCheck.map((h) => h.id)).toEqual([half.id]);
      expect(report.vacuum.blocked).toBe(true);
      expect(report.vacuum.holder).not.toBeNull();
      expect(report.total).toBe(6);
      // The thresholds are the caller's: with 3 attempts left allowed, the message at 2 of 5 is near too.
      expect((await needsAttention(p, { maxAttempts: 5, attemptsLeft: 3, vacuumBlockedAfterMs: 0 })).nearMaxAttempts.map((m) => m.id)).toEqual([failing, fine, undeliverable]);
      expect((await needsAttention(p, { maxAttempts: 5, relayMaxAttempts: 4, attemptsLeft: 1, vacuumBlockedAfterMs: 0 })).nearMaxAttempts.map((m) => m.id)).toEqual([failing, undeliverable, retried]);
      expect((await needsAttention(p, { maxAttempts: 5, limit: 1, vacuumBlockedAfterMs: 0 })).nearMaxAttempts.map((m) => m.id)).toEqual([failing]);
      // Judged at an injected time: an hour on, the other saga and half message are late too.
      const later = await needsAttention(p, { now: new Date(Date.now() + 3_600_000), vacuumBlockedAfterMs: 3_600_000_000 });
      expect(later.sagasPastDeadline.map((s) => s.id)).toEqual([late, onTime]);
      expect(later.halfMessagesPastCheck).toHaveLength(2);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('reads a bounded head of each queue through its claim index, never the whole queue table, and names the queues cut off', async () => {
    // Two deep queues; the lease ran out and the attempts grew at the head of each, as
    // claims leave them, and once more far behind the head.
    const deep = ['deep-a', 'deep-b'];
    await p.query(
      `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at, attempts, lease_token, locked_until, locked_by)
       SELECT q, gen_random_uuid(), 'deep.t', '{}', now(), CASE WHEN g IN (10, 19000) THEN 9 ELSE 0 END,
              CASE WHEN g IN (5, 19005) THEN gen_random_uuid() END, CASE WHEN g IN (5, 19005) THEN now() - interval '1 minute' END, 'w-' || g
       FROM unnest($1::text[]) q, generate_series(1, 20000) g ORDER BY g, q`,
      [deep],
    );
    await p.query('ANALYZE sagabox.queue_messages');
    try {
      const scanLimit = 1_000;
      const statements: { text: string; values: unknown[] }[] = [];
      const client = await p.connect();
      try {
        const recording = new Proxy(client, {
          get(target, prop) {
            if (prop === 'query') {
              // Both forms pg takes: a config object, or text and values apart.
              return (config: string | { text: string; values: unknown[] }, values?: unknown[]) => {
                statements.push(typeof config === 'string' ? { text: config, values: values ?? [] } : config);
                return typeof config === 'string' ? target.query(config, values) : target.query(config);
              };
            }
            const value = Reflect.get(target, prop, target) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
          },
        });
        const report = await needsAttention(recording, { maxAttempts: 10, scanLimit, vacuumBlockedAfterMs: 3_600_000_000 });
        const inDeep = (ms: { queue: string | null; lockedBy: string | null }[]): (string | null)[][] =>
          ms.filter((m) => deep.includes(m.queue ?? '')).map((m) => [m.queue, m.lockedBy]).sort((x, y) => String(x).localeCompare(String(y)));
        expect(inDeep(report.leaseExpired)).toEqual([['deep-a', 'w-5'], ['deep-b', 'w-5']]);
        expect(inDeep(report.nearMaxAttempts)).toEqual([['deep-a', 'w-10'], ['deep-b', 'w-10']]);
        expect(report.beyondScan.queues).toEqual(expect.arrayContaining(deep));
        // With a scan as long as the queues, the messages behind are found too.
        const whole = await needsAttention(p, { maxAttempts: 10, scanLimit: 20_000, vacuumBlockedAfterMs: 3_600_000_000 });
        expect(inDeep(whole.leaseExpired)).toHaveLength(4);
        expect(inDeep(whole.nearMaxAttempts)).toHaveLength(4);
        expect(whole.beyondScan.queues).not.toContain('deep-a');

        // Every statement on the queue table, as planned and run: no sequential scan of
        // it, and no more rows read from it than scanLimit (+ 1 for the cut-off probe)
        // per queue, plus one per queue for the skip scan that finds the queues.
        const queues = Number((await p.query<{ n: string }>('SELECT count(DISTINCT queue) AS n FROM sagabox.queue_messages')).rows[0]!.n);
        const onQueueTable = statements.filter((st) => /queue_messages/.test(st.text));
        expect(onQueueTable.length).toBeGreaterThanOrEqual(3);
        for (const st of onQueueTable) {
          const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>({ text: `EXPLAIN (ANALYZE, FORMAT JSON) ${st.text}`, values: st.values });
          const scans = nodes(rows[0]!['QUERY PLAN'][0].Plan).filter((n) => n['Relation Name'] === 'queue_messages');
          expect(scans.map((n) => n['Node Type']), st.text).not.toContain('Seq Scan');
          const read = scans.reduce((sum, n) => sum + n['Actual Rows'] * n['Actual Loops'], 0);
          expect(read, st.text).toBeLessThanOrEqual(queues * (scanLimit + 2));
        }
      } finally {
        client.release();
      }
    } finally {
      await p.query('DELETE FROM sagabox.queue_messages WHERE queue = ANY($1)', [deep]);
    }
  });

  it('refuses bad options with a typed error before any SQL', async () => {
    for (const bad of [{ maxAttempts: 0 }, { relayMaxAttempts: 0 }, { attemptsLeft: -1 }, { limit: 5_000 }, { now: new Date(Number.NaN) }, { vacuumBlockedAfterMs: -5 }, { scanLimit: 0 }]) {
      const err = await needsAttention(p, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SagaboxError);
      expect(err).toMatchObject({ code: 'INVALID_OPTIONS' });
    }
    await expect(needsAttention(p, { schema: 'bad schema' })).rejects.toMatchObject({ code: 'INVALID_SCHEMA_NAME' });
  });
});

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Rows': number;
  'Actual Loops': number;
  Plans?: PlanNode[];
}

function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}
