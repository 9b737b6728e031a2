import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { createWorker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { countingPool } from '../support/counting-client.js';

const { db, pool, count } = await useDatabase();
const p = pool(4);
await p.query('CREATE TABLE effects (message_id uuid PRIMARY KEY)');
const { track } = stopAfterEach();

// The worker sends BEGIN together with its handling transaction's first statement (the
// fence and inbox insert), in one round trip: when that statement fails, nothing may
// commit and its connection must not go back to the pool inside the failed transaction.
describe('createWorker: the first statement goes out with BEGIN', () => {
  it('a first statement that fails commits nothing, leaves no connection in a transaction, and the message is handled once it succeeds', async () => {
    const wp = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: 10_000, application_name: 'refused-worker' });
    wp.on('error', () => {});
    const handled: string[] = [];
    const worker = track(createWorker({
      pool: wp, queue: 'refused', listen: false, batchSize: 3,
      retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 },
      handler: async (m, { client }) => {
        handled.push(m.id);
        await client.query('INSERT INTO effects (message_id) VALUES ($1)', [m.id]);
      },
    }));
    try {
      await p.query(`INSERT INTO sagabox.queues (name) VALUES ('refused') ON CONFLICT DO NOTHING`);
      await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
                     SELECT 'refused', gen_random_uuid(), 'r.x', '{}', now() FROM generate_series(1, 3)`);
      await p.query(`CREATE FUNCTION refuse_inbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'inbox refused'; END $$`);
      await p.query('CREATE TRIGGER refuse_inbox BEFORE INSERT ON sagabox.inbox FOR EACH ROW EXECUTE FUNCTION refuse_inbox()');

      await worker.runOnce();
      expect(handled).toEqual([]);
      expect(await count('SELECT count(*) AS n FROM effects')).toBe(0);
      expect(await count('SELECT count(*) AS n FROM sagabox.inbox')).toBe(0);
      // Each message failed on its own (after the batch did) and waits for its retry.
      expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'refused' AND last_error LIKE '%inbox refused%'`)).toBe(3);
      expect(await count(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'refused-worker' AND state LIKE 'idle in transaction%'`)).toBe(0);
      // Whatever the pool holds is out of any transaction and out of pipeline mode.
      const clients = await Promise.all(Array.from({ length: 2 }, () => wp.connect()));
      try {
        for (const c of clients) {
          expect(c.pipeline).toBe(false);
          const { rows } = await c.query<{ outside: boolean }>('SELECT now() = statement_timestamp() AS outside');
          expect(rows[0]!.outside).toBe(true);
        }
      } finally {
        for (const c of clients) c.release();
      }

      await p.query('DROP TRIGGER refuse_inbox ON sagabox.inbox');
      await new Promise((r) => setTimeout(r, 20));
      expect(await worker.runOnce()).toBe(3);
      expect(handled).toHaveLength(3);
      expect(await count('SELECT count(*) AS n FROM effects')).toBe(3);
      expect(await count('SELECT count(*) AS n FROM sagabox.inbox')).toBe(3);
      expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'refused'`)).toBe(0);
    } finally {
      await worker.stop();
      await wp.end();
    }
  });

  it('handles the rest of a batch in transactions of its own after a handler failed, each BEGIN going out with its first statement', async () => {
    const wp = new pg.Pool({ connectionString: db.url, max: 2, connectionTimeoutMillis: 10_000 });
    wp.on('error', () => {});
    const { pool: counted, clients } = countingPool(wp);
    const handled: number[] = [];
    const worker = track(createWorker({
      pool: counted, queue: 'alone', listen: false, batchSize: 3,
      retry: { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 },
      handler: async (m) => {
        const { n } = m.payload as { n: number };
        if (n === 1 && m.attempts === 1) throw new Error('first attempt of 1 fails');
        handled.push(n);
      },
    }));
    try {
      await p.query(`INSERT INTO sagabox.queues (name) VALUES ('alone') ON CONFLICT DO NOTHING`);
      await p.query(`INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
                     SELECT 'alone', gen_random_uuid(), 'a.x', jsonb_build_object('n', g), now() FROM generate_series(0, 2) g`);
      await worker.runOnce();
      // The batch stopped at message 1; 2 was handled after it, in a transaction of its own.
      expect(handled).toContain(2);
      expect(clients.flatMap((c) => c.sent).filter((s) => s.text === 'BEGIN').length).toBeGreaterThanOrEqual(3);
      // Every BEGIN went out pipelined, with its transaction's first statement.
      for (const { sent } of clients) {
        for (const [i, s] of sent.entries()) {
          if (s.text !== 'BEGIN') continue;
          expect(s.pipelined).toBe(true);
          expect(sent[i + 1]?.pipelined).toBe(true);
        }
      }
    } finally {
      await worker.stop();
      await wp.end();
    }
  });
});
