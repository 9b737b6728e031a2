import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isSagaboxError, recordInInbox } from '@sagabox/core';
import { addDirectRoute, maintainStorage, type MaintainStorageOptions } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { uuidv7At } from '../support/uuidv7-at.js';
import { expectEachOnceInKeyOrder, produceKeyed } from '../support/keyed-producers.js';
import { startChild, type Child } from '../support/child.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(12);
const DAY = 24 * 3_600_000;

const partitions = async (): Promise<string[]> => {
  const { rows } = await p.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'sagabox.inbox'::regclass ORDER BY 1`,
  );
  return rows.map((r) => r.name);
};
const whereIs = async (consumer: string, id: string): Promise<string | undefined> => {
  const { rows } = await p.query<{ t: string }>(`SELECT tableoid::regclass::text AS t FROM sagabox.inbox WHERE consumer = $1 AND message_id = $2`, [consumer, id]);
  return rows[0]?.t;
};
const record = async (consumer: string, id: string): Promise<boolean> => {
  const c = await p.connect();
  try {
    return await recordInInbox(c, { consumer, messageId: id });
  } finally {
    c.release();
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The inbox's part of a maintainStorage run, as maintainInbox returned it before. */
const maintainInbox = async (pool: typeof p, o: Omit<MaintainStorageOptions, 'retention'> & { retentionMs: number }) => {
  const { retentionMs, ...rest } = o;
  const r = await maintainStorage(pool, { ...rest, retention: { inboxMs: retentionMs } });
  return { ...r.inbox, skipped: r.skipped };
};

describe('maintainStorage: the inbox', () => {
  it('rejects bad options with INVALID_OPTIONS before any SQL', async () => {
    const err = await maintainStorage(p, { retention: { inboxMs: -1 }, partitionMs: 5, schema: 'x; drop' } as never).catch((e: unknown) => e);
    expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
    expect((err as { problems: string[] }).problems.length).toBe(3);
  });

  it('keeps UUIDv7 ids in time partitions that retention drops whole, and other ids in inbox_other, purged by age', async () => {
    const now = new Date('2030-03-10T12:00:00Z');
    // Before maintenance, a v7 id of that day has no partition yet: it waits in inbox_other.
    const early = uuidv7At(now.getTime() - 3_600_000);
    expect(await record('ret', early)).toBe(true);
    expect(await whereIs('ret', early)).toBe('sagabox.inbox_other');

    const first = await maintainInbox(p, { retentionMs: 7 * DAY, now });
    expect(first.created).toEqual(['inbox_p20300310', 'inbox_p20300311', 'inbox_p20300312']);
    // The partition took its rows out of inbox_other: still there once, still deduplicating.
    expect(await whereIs('ret', early)).toBe('sagabox.inbox_p20300310');
    expect(await record('ret', early)).toBe(false);

    const later = uuidv7At(now.getTime() + 60_000);
    const random = randomUUID();
    expect(await record('ret', later)).toBe(true);
    expect(await record('ret', random)).toBe(true);
    expect(await whereIs('ret', later)).toBe('sagabox.inbox_p20300310');
    expect(await whereIs('ret', random)).toBe('sagabox.inbox_other');
    await p.query(`UPDATE sagabox.inbox SET processed_at = $2 WHERE message_id = $1`, [random, now]);

    // Eight days on: the tenth is past retention and goes whole; the random id goes by age.
    const eightDays = new Date(now.getTime() + 8 * DAY);
    const second = await maintainInbox(p, { retentionMs: 7 * DAY, now: eightDays });
    expect(second.dropped).toEqual(['inbox_p20300310']);
    expect(second.created).toContain('inbox_p20300318');
    expect(second.purgedOther).toBeGreaterThanOrEqual(1);
    expect(await whereIs('ret', early)).toBeUndefined();
    expect(await whereIs('ret', random)).toBeUndefined();
    expect(await partitions()).not.toContain('inbox_p20300310');
    expect(await partitions()).toContain('inbox_p20300311');
  });

  it('gives up a drop that cannot get its lock instead of queueing inserts behind it, and drops it on a later run', async () => {
    const now = new Date('2031-01-01T00:00:00Z');
    await maintainInbox(p, { retentionMs: DAY, now });
    const holder = await p.connect();
    try {
      // A long transaction that read the inbox holds a lock the drop needs.
      await holder.query('BEGIN');
      await holder.query(`SELECT count(*) FROM sagabox.inbox`);
      const blocked = await maintainInbox(p, { retentionMs: DAY, now: new Date(now.getTime() + 3 * DAY), lockTimeoutMs: 100 });
      expect(blocked.dropped).toEqual([]);
      expect(blocked.skipped).toBeGreaterThan(0);
      expect(await partitions()).toContain('inbox_p20310101');
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const later = await maintainInbox(p, { retentionMs: DAY, now: new Date(now.getTime() + 3 * DAY) });
    expect(later.dropped).toContain('inbox_p20310101');
  });

  it('rotation every few hundred ms under producers, two workers (one SIGKILLed mid-run) and a held snapshot: every message has one effect, keys keep their order', async () => {
    await p.query('CREATE TABLE effects (seq bigserial PRIMARY KEY, message_id uuid NOT NULL, n int)');
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('rot') ON CONFLICT DO NOTHING`);
    await addDirectRoute(p, { topic: 'rot.*', queue: 'rot' });
    // A report left open: its snapshot holds vacuum back for the whole run.
    const report = await p.connect();
    await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await report.query('SELECT count(*) FROM sagabox.queues');

    // Partitions of 1 s, kept 3 s: many are created and dropped while messages flow.
    let rotating = true;
    const rotations = { created: 0, dropped: 0 };
    const rotator = (async () => {
      while (rotating) {
        const r = await maintainInbox(p, { retentionMs: 3_000, partitionMs: 1_000, aheadMs: 2_000, lockTimeoutMs: 200 });
        rotations.created += r.created.length;
        rotations.dropped += r.dropped.length;
        await sleep(150);
      }
    })();

    const workerEnv = { DATABASE_URL: db.url, QUEUE: 'rot', LEASE_MS: '1500', BATCH_SIZE: '5', INBOX_PURGE_MS: '0' };
    const workers: Child[] = [startChild('worker-child.mjs', workerEnv), startChild('worker-child.mjs', workerEnv)];
    await Promise.all(workers.map((w) => w.waitForLine(/^ready$/)));

    const production = produceKeyed(p, { topic: 'rot.x', keys: 8 });
    await waitFor('a partition dropped under load', () => rotations.dropped >= 1, 30_000);
    await workers[0]!.kill('SIGKILL');
    workers.push(startChild('worker-child.mjs', workerEnv));
    await workers.at(-1)!.waitForLine(/^ready$/);
    await waitFor('more partitions dropped after the kill', () => rotations.dropped >= 3, 30_000);
    await production.stop();
    const { published } = production;

    await waitFor('every message handled', async () => (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'rot'`)) === 0, 60_000);
    rotating = false;
    await rotator;
    await report.query('ROLLBACK');
    report.release();
    for (const w of workers) await w.kill('SIGKILL');

    expect(published.length).toBeGreaterThan(100);
    expect(rotations.created).toBeGreaterThanOrEqual(3);
    // Nothing lost, nothing handled twice, keys in publish order.
    await expectEachOnceInKeyOrder(p, published);
  }, 120_000);
});

