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
    expect(report).toMatchObject({ leaseExpired: [], nearMaxAttempts: [], sagasPastDeadline: [], halfMessagesPastCheck: [], vacuum: { blocked: false }, total: 0 });
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

  it('refuses bad options with a typed error before any SQL', async () => {
    for (const bad of [{ maxAttempts: 0 }, { relayMaxAttempts: 0 }, { attemptsLeft: -1 }, { limit: 5_000 }, { now: new Date(Number.NaN) }, { vacuumBlockedAfterMs: -5 }]) {
      const err = await needsAttention(p, bad).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SagaboxError);
      expect(err).toMatchObject({ code: 'INVALID_OPTIONS' });
    }
    await expect(needsAttention(p, { schema: 'bad schema' })).rejects.toMatchObject({ code: 'INVALID_SCHEMA_NAME' });
  });
});
