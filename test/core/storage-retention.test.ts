import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { commitHalfMessage, createWorker, isSagaboxError, prepare, rollbackHalfMessage } from '@sagabox/core';
import { halfMessageHistory, listDeadLetters, maintainStorage, purgeDeadLetters, purgeHalfMessageDecisions, replayDeadLetters } from '@sagabox/core/admin';
import { getSaga, listSagas } from '@sagabox/saga';
import { useDatabase } from '../support/test-pool.js';
import { uuidv7At } from '../support/uuidv7-at.js';
import { startChild } from '../support/child.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(12);
const DAY = 24 * 3_600_000;
const ALL = { inboxMs: 0, deadLettersMs: 0, halfMessageDecisionsMs: 0, sagasMs: 0 };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The partitions of a parent table, by name. */
const partitions = async (table: string): Promise<string[]> => {
  const { rows } = await p.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = $1::regclass ORDER BY 1`,
    [`sagabox.${table}`],
  );
  return rows.map((r) => r.name);
};


let deadSeq = 0;
const deadLetter = async (queue: string, id = uuidv7()): Promise<string> => {
  await p.query(
    `INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
     VALUES ('queue', $1, $2, 'ret.dead', $3, 'failed', 'boom', 3, now())`,
    [queue, id, { n: deadSeq++ }],
  );
  return id;
};

/** A saga row with `steps` history rows, written as the orchestrator writes them. */
const saga = async (id: string, status: string, steps: number): Promise<void> => {
  await p.query(
    `WITH s AS (INSERT INTO sagabox.sagas (id, saga_type, saga_version, status, state) VALUES ($1, 'ret', 1, $2, '{}'))
     INSERT INTO sagabox.saga_steps (saga_id, step, event) SELECT $1, 'step' || g, 'completed' FROM generate_series(1, $3) g`,
    [id, status, steps],
  );
};

/** Live and dead tuples of every partition of the retained tables, once statistics caught up with `expectLive`. */
const tupleStats = async (table: string): Promise<{ live: number; dead: number }> => {
  const { rows } = await p.query<{ live: string; dead: string }>(
    `SELECT coalesce(sum(s.n_live_tup), 0) AS live, coalesce(sum(s.n_dead_tup), 0) AS dead
     FROM pg_inherits i JOIN pg_stat_user_tables s ON s.relid = i.inhrelid
     WHERE i.inhparent = $1::regclass`,
    [`sagabox.${table}`],
  );
  return { live: Number(rows[0]!.live), dead: Number(rows[0]!.dead) };
};

/** Empties the retained tables and drops their time partitions, so a test starts from the baseline. */
const reset = async (): Promise<void> => {
  await p.query(`TRUNCATE sagabox.dead_letters, sagabox.half_message_decisions, sagabox.sagas, sagabox.saga_steps, sagabox.inbox, sagabox.outbox`);
  const { rows } = await p.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = ANY(ARRAY['sagabox.dead_letters', 'sagabox.half_message_decisions', 'sagabox.sagas', 'sagabox.saga_steps', 'sagabox.inbox']::regclass[])
       AND c.relname NOT LIKE '%\\_other'`,
  );
  for (const { name } of rows) await p.query(`DROP TABLE sagabox.${name}`);
};

describe('maintainStorage', () => {
  it('rejects bad options with INVALID_OPTIONS listing every problem, before any SQL', async () => {
    const err = await maintainStorage(p, { retention: { sagasMs: -1, deadLetterMs: 5 }, partitionMs: 5, schema: 'x; drop' } as never).catch((e: unknown) => e);
    expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
    expect((err as { problems: string[] }).problems).toHaveLength(4);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.constantFrom(undefined, null, [], 'x'),
          fc.integer(),
          fc.record({ inboxMs: fc.oneof(fc.double().filter((x) => !Number.isInteger(x) || x < 0), fc.string(), fc.integer({ max: -1 })) }),
          fc.record({ sagasMs: fc.constantFrom(100 * 366 * DAY, Number.MAX_SAFE_INTEGER, Infinity) }),
        ),
        async (retention) => {
          const e = await maintainStorage(p, { retention } as never).catch((x: unknown) => x);
          expect(isSagaboxError(e, 'INVALID_OPTIONS')).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });

  it('creates every table\'s partitions, and expires only what was asked: dead letters whole, admin functions unchanged', async () => {
    const now = Date.now();
    const first = await maintainStorage(p, { retention: {} });
    for (const data of ['inbox', 'deadLetters', 'halfMessageDecisions', 'sagas'] as const) expect(first[data].created.length).toBeGreaterThanOrEqual(3);
    expect(await partitions('saga_steps')).toEqual((await partitions('sagas')).map((n) => n.replace(/^sagas/, 'saga_steps')));

    const kept = await deadLetter('ret-a');
    await deadLetter('ret-a');
    await deadLetter('ret-b');
    const { rows } = await p.query<{ t: string }>(`SELECT DISTINCT tableoid::regclass::text AS t FROM sagabox.dead_letters`);
    expect(rows.map((r) => r.t)).toEqual([`sagabox.${first.deadLetters.created[0]}`]);
    // The admin functions read and change rows across partitions as before.
    expect((await listDeadLetters(p, { queue: 'ret-a' })).map((d) => d.id)).toContain(kept);
    const [one] = await listDeadLetters(p, { queue: 'ret-b' });
    expect(await purgeDeadLetters(p, { deadIds: [one!.deadId] })).toBe(1);
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('ret-a') ON CONFLICT DO NOTHING`);
    const [replayed] = await listDeadLetters(p, { queue: 'ret-a', limit: 1 });
    expect(await replayDeadLetters(p, { deadIds: [replayed!.deadId] })).toBe(1);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'ret-a'`)).toBe(1);

    // Ten days on with only the inbox's retention (what a worker runs): dead letters stay.
    const later = new Date(now + 10 * DAY);
    const innerOnly = await maintainStorage(p, { retention: { inboxMs: 7 * DAY }, now: later });
    expect(innerOnly.inbox.dropped.length).toBeGreaterThanOrEqual(1);
    expect(innerOnly.deadLetters.dropped).toEqual([]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(1);
    // With theirs, today's partition goes whole.
    const expired = await maintainStorage(p, { retention: { deadLettersMs: 7 * DAY }, now: later });
    expect(expired.deadLetters.dropped).toContain(first.deadLetters.created[0]);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
    expect(await partitions('dead_letters')).not.toContain(first.deadLetters.created[0]);
  });

  it('keeps the width an operator chose: a run with the defaults, as every worker makes, adds partitions as wide as the newest', async () => {
    await reset();
    const MIN = 60_000;
    /** [from, to) of each dead_letters partition, in ms, by start. */
    const ranges = async (): Promise<{ from: number; to: number }[]> => {
      const { rows } = await p.query<{ lo: Date; hi: Date }>(
        `SELECT b[1]::timestamptz AS lo, b[2]::timestamptz AS hi
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid,
              regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') b
         WHERE i.inhparent = 'sagabox.dead_letters'::regclass AND b IS NOT NULL ORDER BY 1`);
      return rows.map((r) => ({ from: r.lo.getTime(), to: r.hi.getTime() }));
    };
    const started = Date.now();
    await maintainStorage(p, { retention: {}, partitionMs: MIN, aheadMs: 5 * MIN });
    expect((await ranges()).at(-1)!.to).toBeLessThanOrEqual(started + 7 * MIN);

    // A worker starting up maintains with the defaults: one-minute partitions, 32 ahead.
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('ret-width') ON CONFLICT DO NOTHING`);
    const worker = createWorker({ pool: p, queue: 'ret-width', handler: async () => {} });
    await worker.start();
    try {
      await waitFor('the worker\'s maintenance', async () => (await ranges()).at(-1)!.to >= started + 30 * MIN, 20_000);
    } finally {
      await worker.stop();
    }
    const made = await ranges();
    for (const r of made) expect(r.to - r.from).toBe(MIN);
    expect(made.at(-1)!.to).toBeLessThanOrEqual(Date.now() + 34 * MIN);
    for (const [i, r] of made.slice(1).entries()) expect(r.from).toBe(made[i]!.to);

    // Without partitions, the defaults make day partitions two days ahead.
    await reset();
    const day = await maintainStorage(p, { retention: {} });
    expect(day.deadLetters.created.length).toBe(3);
    for (const r of await ranges()) expect(r.to - r.from).toBe(DAY);
  });

  it('keeps half-message decisions of messages still in the outbox, and a running saga\'s row and whole history', async () => {
    const t0 = Date.UTC(2032, 0, 1);
    await maintainStorage(p, { retention: {}, now: new Date(t0) });
    // Half messages of that day: one still prepared, one rolled back, one committed (the
    // relay is not running, so it stays in the outbox).
    const [stillPrepared, rolledBack, committed] = [uuidv7At(t0 + 1_000), uuidv7At(t0 + 2_000), uuidv7At(t0 + 3_000)];
    for (const id of [stillPrepared, rolledBack, committed]) await prepare(p, { id, topic: 'ret.half', payload: {} });
    await rollbackHalfMessage(p, rolledBack);
    await commitHalfMessage(p, committed);
    const before = await halfMessageHistory(p, stillPrepared);
    expect(before).toHaveLength(1);

    // Sagas started that day: running, failed (waits for an operator), finished long ago,
    // finished recently (updated_at later than the cutoff).
    const ids = { running: uuidv7At(t0 + 1_000), failed: uuidv7At(t0 + 2_000), oldDone: uuidv7At(t0 + 3_000), recentDone: uuidv7At(t0 + 4_000) };
    await saga(ids.running, 'running', 3);
    await saga(ids.failed, 'failed', 2);
    await saga(ids.oldDone, 'completed', 4);
    await saga(ids.recentDone, 'compensated', 5);
    const ten = new Date(t0 + 10 * DAY);
    await p.query(`UPDATE sagabox.sagas SET updated_at = $2 WHERE id = $1`, [ids.recentDone, ten]);
    await p.query(`UPDATE sagabox.sagas SET updated_at = $2 WHERE id = $1`, [ids.oldDone, new Date(t0 + 60_000)]);
    const running = await getSaga(p, ids.running);

    const r = await maintainStorage(p, { retention: { halfMessageDecisionsMs: 7 * DAY, sagasMs: 7 * DAY }, now: ten });
    expect(r.halfMessageDecisions.dropped).toContain('half_message_decisions_p20320101');
    expect(r.sagas.dropped).toContain('sagas_p20320101');
    expect(await partitions('saga_steps')).not.toContain('saga_steps_p20320101');
    // Kept: 3 decisions (prepared; prepared + commit), 3 sagas with 3 + 2 + 5 steps.
    expect(r.halfMessageDecisions.kept).toBe(3);
    expect(r.sagas.kept).toBe(3 + 3 + 2 + 5);

    expect(await halfMessageHistory(p, stillPrepared)).toEqual(before);
    expect((await halfMessageHistory(p, committed)).map((d) => d.decision)).toEqual(['prepared', 'commit']);
    expect(await halfMessageHistory(p, rolledBack)).toEqual([]);
    expect(await getSaga(p, ids.running)).toEqual(running);
    expect((await getSaga(p, ids.failed))?.history).toHaveLength(2);
    expect((await getSaga(p, ids.recentDone))?.history).toHaveLength(5);
    expect(await getSaga(p, ids.oldDone)).toBeUndefined();
    expect((await listSagas(p, { type: 'ret' })).map((s) => s.id).sort()).toEqual([ids.running, ids.failed, ids.recentDone].sort());
    // The kept rows wait in the default partitions, where they go row by row once due.
    expect(await count(`SELECT count(*) AS n FROM sagabox.sagas_other WHERE saga_type = 'ret'`)).toBe(3);

    // The running saga finishes; the committed message leaves the outbox. Both expire later, row by row.
    await p.query(`UPDATE sagabox.sagas SET status = 'completed' WHERE id = $1`, [ids.running]);
    await p.query(`DELETE FROM sagabox.outbox WHERE id = $1`, [committed]);
    const much = await maintainStorage(p, { retention: { halfMessageDecisionsMs: 0, sagasMs: 0 }, now: new Date(t0 + 30 * DAY) });
    expect(much.sagas.purgedOther).toBeGreaterThanOrEqual(2);
    expect(await getSaga(p, ids.running)).toBeUndefined();
    expect(await getSaga(p, ids.recentDone)).toBeUndefined();
    expect((await getSaga(p, ids.failed))?.history).toHaveLength(2);
    expect(await halfMessageHistory(p, committed)).toEqual([]);
    expect(await halfMessageHistory(p, stillPrepared)).toEqual(before);
    // purgeHalfMessageDecisions still works on what is left, and still spares prepared ones.
    expect(await purgeHalfMessageDecisions(p, { olderThanMs: 0 })).toBe(0);
  });

  it('expires by dropping partitions, leaving no dead tuples, where row-by-row purges leave one per row', async () => {
    await reset();
    await maintainStorage(p, { retention: {} });
    const N = 300;
    for (let i = 0; i < N; i += 1) await deadLetter('ret-stat');
    for (let i = 0; i < N / 10; i += 1) await saga(uuidv7(), 'completed', 10);
    await p.query(
      `INSERT INTO sagabox.half_message_decisions (message_id, topic, decision, source) SELECT $1::uuid, 'ret.h', 'prepared', 'producer' FROM generate_series(1, $2)`,
      [uuidv7(), N],
    );
    for (const t of ['dead_letters', 'sagas', 'saga_steps', 'half_message_decisions']) {
      await waitFor(`statistics of ${t}`, async () => (await tupleStats(t)).live >= N / 10, 30_000, 200);
    }
    const r = await maintainStorage(p, { retention: ALL, now: new Date(Date.now() + 5 * DAY) });
    expect(r.deadLetters.dropped.length).toBeGreaterThanOrEqual(1);
    expect(r.sagas.dropped.length).toBeGreaterThanOrEqual(1);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.saga_steps`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.half_message_decisions`)).toBe(0);
    for (const t of ['dead_letters', 'sagas', 'saga_steps', 'half_message_decisions']) expect(await tupleStats(t)).toEqual({ live: 0, dead: 0 });

    // The same rows removed by purgeDeadLetters (a DELETE): one dead tuple each, which the
    // statistics above would have shown.
    // Statistics are eventual: the purging session's are flushed on demand, and a snapshot
    // held from before the purge keeps an autovacuum (on in the embedded server) from
    // removing the dead tuples before they are read; it would count them as dead anyway.
    await maintainStorage(p, { retention: {} });
    for (let i = 0; i < N; i += 1) await deadLetter('ret-stat');
    const holder = await p.connect();
    const purger = await p.connect();
    try {
      await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await holder.query('SELECT 1 FROM sagabox.dead_letters LIMIT 1');
      expect(await purgeDeadLetters(purger, { queue: 'ret-stat' })).toBe(N);
      await purger.query('SELECT pg_stat_force_next_flush()');
      await waitFor('dead tuples of a DELETE', async () => (await tupleStats('dead_letters')).dead >= N, 30_000, 200);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
      purger.release();
    }
  }, 60_000);

  it('creates a range being written only once its writers commit (giving up after lockTimeoutMs), and ranges ahead without waiting for anyone', async () => {
    await reset();
    const holder = await p.connect();
    try {
      // A dead letter written before any partition exists waits in dead_letters_other; its
      // transaction stays open.
      await holder.query('BEGIN');
      await holder.query(
        `INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
         VALUES ('queue', 'ret-w', gen_random_uuid(), 'ret.dead', '{}', 'failed', 'boom', 1, now())`,
      );
      const blocked = await maintainStorage(p, { retention: {}, lockTimeoutMs: 100 });
      expect(blocked.deadLetters.created).toEqual([]);
      expect(blocked.skipped).toBe(1);
      expect(blocked.sagas.created.length).toBeGreaterThanOrEqual(3);
      await holder.query('COMMIT');
      const done = await maintainStorage(p, { retention: {}, lockTimeoutMs: 100 });
      expect(done.deadLetters.created.length).toBeGreaterThanOrEqual(3);
      expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters_other`)).toBe(0);
      expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE queue = 'ret-w'`)).toBe(1);

      // Writers in today's partitions do not hold up partitions days ahead.
      await holder.query('BEGIN');
      await holder.query(
        `INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
         VALUES ('queue', 'ret-w', gen_random_uuid(), 'ret.dead', '{}', 'failed', 'boom', 1, now())`,
      );
      await saga(uuidv7(), 'running', 1);
      const ahead = await maintainStorage(p, { retention: {}, aheadMs: 6 * DAY, lockTimeoutMs: 100 });
      expect(ahead.skipped).toBe(0);
      expect(ahead.deadLetters.created.length).toBeGreaterThanOrEqual(3);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
  });

  it('leaves a REPEATABLE READ snapshot that read the sagas its whole view: the drop waits for it, then keeps what is running', async () => {
    await reset();
    const t0 = Date.UTC(2036, 2, 1);
    await maintainStorage(p, { retention: {}, now: new Date(t0) });
    const [running, done] = [uuidv7At(t0 + 1_000), uuidv7At(t0 + 2_000)];
    await saga(running, 'running', 2);
    await saga(done, 'completed', 3);
    const view = 'SELECT s.id, s.status, count(h.seq)::int AS steps FROM sagabox.sagas s LEFT JOIN sagabox.saga_steps h ON h.saga_id = s.id GROUP BY 1, 2 ORDER BY 1';
    const report = await p.connect();
    try {
      await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      const before = (await report.query(view)).rows;
      expect(before).toHaveLength(2);
      const later = new Date(t0 + 10 * DAY);
      const blocked = await maintainStorage(p, { retention: { sagasMs: DAY }, now: later, lockTimeoutMs: 100 });
      expect(blocked.sagas.dropped).toEqual([]);
      expect(blocked.skipped).toBeGreaterThanOrEqual(1);
      expect((await report.query(view)).rows).toEqual(before);
      await report.query('COMMIT');
      const r = await maintainStorage(p, { retention: { sagasMs: DAY }, now: later, lockTimeoutMs: 100 });
      expect(r.sagas.dropped).toContain('sagas_p20360301');
      expect((await p.query(view)).rows).toEqual(before.filter((x) => x.id === running));
    } finally {
      await report.query('ROLLBACK').catch(() => {});
      report.release();
    }
  });

  it('under concurrent writers, a held REPEATABLE READ snapshot and rotation every few hundred ms, loses nothing not expired and duplicates nothing', async () => {
    await reset();
    // A report left open: its snapshot holds vacuum back for the whole run.
    const report = await p.connect();
    await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await report.query('SELECT count(*) FROM sagabox.queues');

    const RETENTION = 3_000;
    let rotating = true;
    const rotations = { dropped: 0, kept: 0, skipped: 0, cutoffMs: 0 };
    const rotator = (async () => {
      while (rotating) {
        const started = Date.now();
        const r = await maintainStorage(p, {
          retention: { deadLettersMs: RETENTION, halfMessageDecisionsMs: RETENTION, sagasMs: RETENTION },
          partitionMs: 1_000, aheadMs: 2_000, lockTimeoutMs: 200, now: new Date(started),
        });
        rotations.dropped += r.deadLetters.dropped.length + r.halfMessageDecisions.dropped.length + r.sagas.dropped.length;
        rotations.kept += r.sagas.kept + r.halfMessageDecisions.kept;
        rotations.skipped += r.skipped;
        rotations.cutoffMs = started - RETENTION;
        await sleep(100);
      }
    })();

    const written = { dead: [] as { id: string; at: number }[], rolledBack: [] as string[], prepared: [] as string[], running: [] as string[], done: [] as string[] };
    let writing = true;
    const deadWriter = async () => {
      while (writing) {
        const id = uuidv7();
        const { rows } = await p.query<{ at: Date }>(
          `INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
           VALUES ('queue', 'ret-c', $1, 'ret.dead', '{}', 'failed', 'boom', 1, now()) RETURNING dead_at AS at`,
          [id],
        );
        written.dead.push({ id, at: rows[0]!.at.getTime() });
        await sleep(3);
      }
    };
    const halfWriter = async () => {
      for (let i = 0; writing; i += 1) {
        const { id } = await prepare(p, { topic: 'ret.half', payload: { i } });
        if (i % 4 === 0) written.prepared.push(id);
        else {
          await rollbackHalfMessage(p, id);
          written.rolledBack.push(id);
        }
        await sleep(3);
      }
    };
    // Running sagas gain a step now and then for the whole run, across their partition's expiry.
    const sagaWriter = async () => {
      for (let i = 0; writing; i += 1) {
        const id = uuidv7();
        await saga(id, 'running', 1);
        if (i % 3 === 0) written.running.push(id);
        else {
          await p.query(`UPDATE sagabox.sagas SET status = 'completed', updated_at = now() WHERE id = $1`, [id]);
          written.done.push(id);
        }
        const target = written.running[Math.floor(Math.random() * written.running.length)];
        if (target) await p.query(`INSERT INTO sagabox.saga_steps (saga_id, step, event) VALUES ($1, 'more', 'completed')`, [target]);
        await sleep(3);
      }
    };
    const writers = [deadWriter(), deadWriter(), halfWriter(), sagaWriter(), sagaWriter()];
    try {
      await waitFor('partitions expired under load, with rows kept', () => rotations.dropped >= 9 && rotations.kept > 0, 60_000);
    } finally {
      writing = false;
      await Promise.all(writers);
      rotating = false;
      await rotator;
    }
    // The held snapshot saw none of it and still sees the same.
    expect(Number((await report.query('SELECT count(*) AS n FROM sagabox.dead_letters')).rows[0].n)).toBe(0);
    await report.query('ROLLBACK');
    report.release();

    // Nothing duplicated.
    expect(await count(`SELECT count(*) - count(DISTINCT id) AS n FROM sagabox.dead_letters`)).toBe(0);
    expect(await count(`SELECT count(*) - count(DISTINCT id) AS n FROM sagabox.sagas`)).toBe(0);
    expect(await count(`SELECT count(*) - count(DISTINCT (saga_id, seq)) AS n FROM sagabox.saga_steps`)).toBe(0);
    expect(await count(`SELECT count(*) - count(DISTINCT (message_id, seq)) AS n FROM sagabox.half_message_decisions`)).toBe(0);
    // Nothing lost that had not expired: dead letters newer than the last cutoff, every
    // running saga with its whole history (one 'completed' per step written), every
    // prepared message's decision.
    const { rows: dead } = await p.query<{ id: string }>(`SELECT id FROM sagabox.dead_letters`);
    const present = new Set(dead.map((d) => d.id));
    const due = written.dead.filter((d) => d.at >= rotations.cutoffMs);
    expect(due.length).toBeGreaterThan(0);
    expect(due.filter((d) => !present.has(d.id))).toEqual([]);
    const { rows: runningRows } = await p.query<{ id: string; steps: number }>(
      `SELECT s.id, (SELECT count(*) FROM sagabox.saga_steps h WHERE h.saga_id = s.id)::int AS steps FROM sagabox.sagas s WHERE s.status = 'running'`,
    );
    expect(runningRows.map((r) => r.id).sort()).toEqual([...written.running].sort());
    const moreSteps = await count(`SELECT count(*) AS n FROM sagabox.saga_steps WHERE step = 'more'`);
    expect(runningRows.reduce((n, r) => n + r.steps, 0)).toBe(written.running.length + moreSteps);
    expect(await count(`SELECT count(DISTINCT message_id) AS n FROM sagabox.half_message_decisions WHERE message_id = ANY($1::uuid[])`, [written.prepared])).toBe(written.prepared.length);
    // Expired data did go: most finished sagas and rolled-back messages' decisions.
    expect(await count(`SELECT count(*) AS n FROM sagabox.sagas WHERE status = 'completed'`)).toBeLessThan(written.done.length);
    expect(await count(`SELECT count(*) AS n FROM sagabox.half_message_decisions WHERE message_id = ANY($1::uuid[])`, [written.rolledBack])).toBeLessThan(2 * written.rolledBack.length);
  }, 120_000);

  it('a maintainer SIGKILLed mid-run leaves every table consistent, and the next run completes it', async () => {
    await reset();
    const t0 = Date.UTC(2034, 5, 1);
    const PART = 60_000;
    // Rows that must survive every drop: running sagas with history, a prepared message.
    await maintainStorage(p, { retention: {}, partitionMs: PART, aheadMs: 10 * PART, now: new Date(t0) });
    const running = Array.from({ length: 5 }, (_, i) => uuidv7At(t0 + i * PART + 1));
    for (const id of running) await saga(id, 'running', 2);
    const prepared = uuidv7At(t0 + 1);
    await prepare(p, { id: prepared, topic: 'ret.half', payload: {} });

    for (let round = 0; round < 3; round += 1) {
      const child = startChild('storage-maintainer-child.mjs', { DATABASE_URL: db.url, PARTITION_MS: String(PART), AHEAD_MS: String(15 * PART), NOW_MS: String(t0) });
      await child.waitForLine(/^run created/, 60_000);
      await sleep(50 + Math.random() * 400);
      await child.kill('SIGKILL');

      // Whatever the kill interrupted: every partition table is attached, sagas and
      // saga_steps are partitioned alike, and the kept rows are there once each.
      const { rows: orphans } = await p.query<{ name: string }>(
        `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = 'sagabox' AND c.relkind = 'r' AND c.relname ~ '_p[0-9]{8}' AND NOT c.relispartition`,
      );
      expect(orphans).toEqual([]);
      expect(await partitions('saga_steps')).toEqual((await partitions('sagas')).map((n) => n.replace(/^sagas/, 'saga_steps')));
      for (const id of running) expect((await getSaga(p, id))?.history).toHaveLength(2);
      expect(await count(`SELECT count(*) AS n FROM sagabox.sagas`)).toBe(running.length);
      expect(await halfMessageHistory(p, prepared)).toHaveLength(1);

      // The killed session's advisory lock goes with its backend; then a run completes.
      const done = await waitFor('a maintenance run that is not skipped', async () => {
        const r = await maintainStorage(p, { retention: ALL, partitionMs: PART, aheadMs: 10 * PART, now: new Date(t0 + 400 * PART) });
        return r.skipped === 0 ? r : undefined;
      }, 30_000, 200);
      const names = await partitions('sagas');
      // The ranges of the complete run are there; what the child made before them is gone.
      expect(names).toContain('sagas_p20340601_064000_000');
      expect(names.filter((n) => n < 'sagas_p20340601_064000_000' && n !== 'sagas_other')).toEqual([]);
      expect(done.sagas.dropped.length + done.sagas.created.length).toBeGreaterThan(0);
      for (const id of running) expect((await getSaga(p, id))?.history).toHaveLength(2);
    }
  }, 180_000);
});
