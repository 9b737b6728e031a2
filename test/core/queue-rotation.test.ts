import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import pg from 'pg';
import { createWorker } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { holdSnapshot, ringState, rotate, timeInSlot } from '../support/queue-ring.js';

const { db, pool, count } = await useDatabase();
const p = pool(6);
// What the workers of these tests handled, in handling order.
await p.query('CREATE TABLE handled (seq bigint GENERATED ALWAYS AS IDENTITY, id uuid NOT NULL, attempts int NOT NULL)');
await p.query(`INSERT INTO sagabox.queues (name) VALUES ('rq')`);
// These tests make slots of dead rows and expect their pages on disk; autovacuum (on in
// the embedded and container servers) would cut an empty slot's pages away, and the
// function skips a slot without pages.
for (const s of [0, 1, 2, 3]) await p.query(`ALTER TABLE sagabox.queue_messages_${s} SET (autovacuum_enabled = false)`);

/**
 * rotate_queue_messages(p_now) looks at the slots now+1 and now+2 of the ring, so at
 * timeInSlot(1) it empties slots 2 and 3 (what is left in them goes to slot 1, the
 * clock's) and leaves 1 and 0 (the previous) alone. Rows are written by hand with an
 * explicit part.
 */
const AT_1 = { now: timeInSlot(1) };

/** `n` messages in slot `part` of queue rq, all ready, keyed `key` when given; resolves to their ids. */
const insert = async (part: number, n: number, o: { set?: string; key?: string } = {}): Promise<string[]> => {
  const { rows } = await p.query<{ id: string }>(
    `INSERT INTO sagabox.queue_messages (queue, id, part, topic, key, payload, created_at)
     SELECT 'rq', gen_random_uuid(), $1, 'rq.x', $3, jsonb_build_object('n', g, 'pad', repeat('x', 100)), now()
     FROM generate_series(1, $2) g RETURNING id`,
    [part, n, o.key ?? null],
  );
  const ids = rows.map((r) => r.id);
  if (o.set) await p.query(`UPDATE sagabox.queue_messages SET ${o.set} WHERE id = ANY($1)`, [ids]);
  return ids;
};
/** Deletes every row of slot `part` (as acks do), leaving its pages on disk. */
const empty = (part: number) => p.query('DELETE FROM sagabox.queue_messages WHERE part = $1', [part]);
/** Fills each of `parts` with `n` messages and deletes them (as acks do): slots of dead rows only. */
const deadSlots = async (parts: number[], n: number): Promise<void> => {
  for (const part of parts) {
    await insert(part, n);
    await empty(part);
  }
};
/** A message's row, every column, and the slot it is in. */
const rowOf = async (id: string): Promise<{ part: number; row: Record<string, unknown> } | undefined> =>
  (await p.query<{ part: number; row: Record<string, unknown> }>(
    `SELECT m.part, to_jsonb(m) - 'part' AS row FROM sagabox.queue_messages m WHERE id = $1`, [id])).rows[0];
const idsIn = async (part: number): Promise<string[]> =>
  (await p.query<{ id: string }>('SELECT id FROM sagabox.queue_messages WHERE part = $1 ORDER BY seq', [part])).rows.map((r) => r.id);

beforeEach(async () => {
  await p.query('TRUNCATE sagabox.queue_messages, handled');
});

describe('rotate_queue_messages', () => {
  it('truncates a target slot whose rows were all deleted, and leaves the clock\'s and the previous slot alone though they are empty too', async () => {
    await deadSlots([0, 1, 2], 200);
    const before = await ringState(p);
    expect(before.slice(0, 3).every((s) => s.bytes > 0)).toBe(true);
    expect(before[3]!.bytes).toBe(0);

    // Slot 3 has no pages: skipped silently, neither truncated nor busy.
    expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 0 });
    const after = await ringState(p);
    expect(after[2]!.filenode).not.toBe(before[2]!.filenode);
    expect(after[2]!.bytes).toBe(0);
    for (const s of [0, 1, 3]) expect(after[s]!.filenode, `slot ${s}`).toBe(before[s]!.filenode);

    // A turn later the clock is in slot 3: slots 0 and 1 are the targets now.
    expect((await rotate(p, { now: timeInSlot(3) })).truncated.sort()).toEqual([0, 1]);
    expect((await ringState(p)).map((s) => s.bytes)).toEqual([0, 0, 0, 0]);
  });

  it.each([
    ['ready', ''],
    ['leased', `lease_token = gen_random_uuid(), locked_until = now() + interval '1 minute', locked_by = 'w', attempts = 1`],
    ['leased by a worker that died (lease ran out)', `lease_token = gen_random_uuid(), locked_until = now() - interval '1 minute', locked_by = 'w', attempts = 1`],
    ['delayed', `run_at = now() + interval '1 hour'`],
    ['retrying', `attempts = 2, last_error = 'boom', run_at = now() + interval '5 seconds'`],
  ])('moves a %s message left among deleted rows to the clock\'s slot, every column kept, then truncates its slot', async (_kind, set) => {
    await deadSlots([2, 3], 300);
    const [live] = await insert(2, 1, { set });
    const before = await rowOf(live!);
    const ring = await ringState(p);

    expect(await rotate(p, AT_1)).toEqual({ truncated: [2, 3], busy: [], moved: 1 });
    // The same message (id, seq, lease, attempts, times ...), now in the clock's slot.
    expect(await rowOf(live!)).toEqual({ part: 1, row: before!.row });
    expect(before!.part).toBe(2);
    const after = await ringState(p);
    expect(after[2]!.filenode).not.toBe(ring[2]!.filenode);
    expect(after[2]!.bytes).toBe(0);
  });

  it('as the workers call it (p_min_dead 256): leaves a slot with few dead rows to vacuum, and moves messages only to free at least as many dead rows', async () => {
    /** Deletes rows of slot `part` and flushes this session's statistics, which the function reads. */
    const deleteFlushed = async (where: string, params: unknown[]): Promise<void> => {
      const c = await p.connect();
      try {
        await c.query(`DELETE FROM sagabox.queue_messages WHERE ${where}`, params);
        await c.query('SELECT pg_stat_force_next_flush()');
      } finally {
        c.release();
      }
    };
    const few = await insert(2, 100);
    await deleteFlushed('id = ANY($1)', [few]);
    // Written delayed in one INSERT: an UPDATE would leave dead rows of its own.
    const delayed = (await p.query<{ id: string }>(
      `INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, created_at, run_at)
       SELECT 'rq', gen_random_uuid(), 3, 'rq.x', '{}', now(), now() + interval '1 hour' FROM generate_series(1, 300) ORDER BY 1 RETURNING id`,
    )).rows.map((r) => r.id);
    const some = await insert(3, 200);
    await deleteFlushed('id = ANY($1)', [some]);

    // Slot 2: 100 dead rows, under 256. Slot 3: 200 dead rows for 300 delayed messages.
    expect(await rotate(p, { ...AT_1, minDead: 256 })).toEqual({ truncated: [], busy: [], moved: 0 });
    expect(await idsIn(3)).toEqual(delayed);

    // 400 more handled in each: slot 2 has 500 dead rows, slot 3 600 for its 300 messages.
    await deleteFlushed('id = ANY($1)', [await insert(2, 400)]);
    await deleteFlushed('id = ANY($1)', [await insert(3, 400)]);
    expect(await rotate(p, { ...AT_1, minDead: 256 })).toEqual({ truncated: [2, 3], busy: [], moved: 300 });
    expect(await idsIn(1)).toEqual(delayed);
  });

  it('moves a backlog in seq order, keys and all, and a worker then handles it once per message in key order', async () => {
    // One key across three slots: 2 (older), then 3, then 1 (the clock's).
    const ids = [...await insert(2, 3, { key: 'k' }), ...await insert(3, 3, { key: 'k' }), ...await insert(1, 3, { key: 'k' })];
    expect(await rotate(p, AT_1)).toEqual({ truncated: [2, 3], busy: [], moved: 6 });
    expect(await idsIn(1)).toEqual(ids);

    const worker = createWorker({
      pool: pool(3), queue: 'rq', batchSize: 10,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO handled (id, attempts) VALUES ($1, $2)', [m.id, m.attempts]);
      },
    });
    try {
      while ((await worker.runOnce()) > 0);
    } finally {
      await worker.stop();
    }
    const { rows } = await p.query<{ id: string }>('SELECT id FROM handled ORDER BY seq');
    expect(rows.map((r) => r.id)).toEqual(ids);
  });

  it('a batch whose rows a rotation moves between its claim and its handling is handled at once by the same worker, by id', async () => {
    // Rows already in the clock's slot (another queue's): the moved ones land on other
    // ctids than the claim saw, so only the handling transaction's look-up by id finds them.
    await insert(1, 50, { set: `queue = 'other'` });
    const ids = await insert(2, 5);
    // The handling transaction's first statement waits at this gate until the rotation is done.
    let reached!: () => void;
    const atGate = new Promise<void>((r) => (reached = r));
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const gated = pool(3);
    gated.on('connect', (client) => {
      const query = client.query.bind(client) as (...a: unknown[]) => unknown;
      (client as unknown as { query: (...a: unknown[]) => unknown }).query = (...args: unknown[]) => {
        const first = args[0] as string | { text?: string };
        const text = typeof first === 'string' ? first : first.text ?? '';
        if (!text.includes('by_ctid')) return query(...args);
        reached();
        return gate.then(() => query(...args));
      };
    });
    const worker = createWorker({
      pool: gated, queue: 'rq', batchSize: 10, leaseMs: 60_000,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO handled (id, attempts) VALUES ($1, $2)', [m.id, m.attempts]);
      },
    });
    try {
      const handling = worker.runOnce();
      await atGate;
      // Claimed (leased for a minute) and not yet taken: the rotation moves them.
      expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 5 });
      expect((await p.query('SELECT count(*)::int AS n FROM sagabox.queue_messages WHERE id = ANY($1) AND part = 1 AND lease_token IS NOT NULL', [ids])).rows[0]).toEqual({ n: 5 });
      open();
      expect(await handling).toBe(5);
    } finally {
      open();
      await worker.stop();
    }
    const { rows } = await p.query<{ id: string; attempts: number }>('SELECT id, attempts FROM handled ORDER BY seq');
    expect(rows.map((r) => r.id).sort()).toEqual([...ids].sort());
    expect(rows.every((r) => r.attempts === 1)).toBe(true);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'rq'`)).toBe(0);
  });

  it('leaves a slot holding more than p_max_move messages where it is', async () => {
    const ids = await insert(2, 3);
    const ring = await ringState(p);
    expect(await rotate(p, { ...AT_1, maxMove: 2 })).toEqual({ truncated: [], busy: [], moved: 0 });
    expect(await idsIn(2)).toEqual(ids);
    expect((await ringState(p))[2]!.filenode).toBe(ring[2]!.filenode);
    expect(await rotate(p, { ...AT_1, maxMove: 3 })).toEqual({ truncated: [2], busy: [], moved: 3 });
    expect(await idsIn(1)).toEqual(ids);
  });

  it('keeps one row of a message whose copy is in the clock\'s slot already', async () => {
    const [id] = await insert(2, 1);
    await p.query(`INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, created_at) VALUES ('rq', $1, 1, 'rq.x', '{"copy": true}', now())`, [id]);
    expect((await rotate(p, AT_1)).truncated).toEqual([2]);
    const { rows } = await p.query('SELECT part, payload FROM sagabox.queue_messages WHERE id = $1', [id]);
    expect(rows).toEqual([{ part: 1, payload: { copy: true } }]);
  });

  it('reports a slot busy whose lock another transaction holds (a reader, an uncommitted insert) and leaves it alone', async () => {
    await deadSlots([2, 3], 100);
    const reader = await p.connect();
    const writer = await p.connect();
    try {
      await reader.query('BEGIN');
      await reader.query('SELECT count(*) FROM sagabox.queue_messages_2');
      // A producer's transaction, still open: its row is invisible to everyone else.
      await writer.query('BEGIN');
      const id = randomUUID();
      await writer.query(
        `INSERT INTO sagabox.queue_messages (queue, id, part, topic, payload, created_at) VALUES ('rq', $1, 3, 'rq.x', '{}', now())`,
        [id],
      );
      const before = await ringState(p);
      expect(await rotate(p, AT_1)).toEqual({ truncated: [], busy: [2, 3], moved: 0 });
      expect((await ringState(p)).map((s) => s.filenode)).toEqual(before.map((s) => s.filenode));

      await writer.query('COMMIT');
      await reader.query('COMMIT');
      // Both free now: the producer's committed message goes to the clock's slot.
      expect(await rotate(p, AT_1)).toEqual({ truncated: [2, 3], busy: [], moved: 1 });
      expect(await idsIn(1)).toEqual([id]);
    } finally {
      await reader.query('ROLLBACK').catch(() => {});
      await writer.query('ROLLBACK').catch(() => {});
      reader.release();
      writer.release();
    }
  });

  it('with p_wait_ms, waits for a held lock: takes a slot freed meanwhile, reports busy one still held', async () => {
    await deadSlots([2, 3], 100);
    const holder = await p.connect();
    const brief = await p.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT count(*) FROM sagabox.queue_messages_2');
      await brief.query('BEGIN');
      await brief.query('SELECT count(*) FROM sagabox.queue_messages_3');
      // Slot 2 is looked at first; while the rotation waits for it, slot 3 is let go.
      const rotation = rotate(p, { ...AT_1, waitMs: 400 });
      await waitFor('the rotation waiting for slot 2', async () =>
        (await count(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'sagabox.queue_messages_2'::regclass`)) === 1);
      await brief.query('COMMIT');
      expect(await rotation).toEqual({ truncated: [3], busy: [2], moved: 0 });
      await holder.query('COMMIT');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await brief.query('ROLLBACK').catch(() => {});
      holder.release();
      brief.release();
    }
    expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 0 });
  });

  it('a second caller while a rotation is in progress returns empty arrays, doing nothing', async () => {
    await insert(2, 100);
    await empty(2);
    const [live] = await insert(3, 1);
    const first = await p.connect();
    try {
      // The first rotation (at slot 3: targets 0 and 1, both without pages) is still open.
      await first.query('BEGIN');
      expect(await rotate(first, { now: timeInSlot(3) })).toEqual({ truncated: [], busy: [], moved: 0 });
      const before = await ringState(p);
      expect(await rotate(p, AT_1)).toEqual({ truncated: [], busy: [], moved: 0 });
      expect((await ringState(p)).map((s) => s.filenode)).toEqual(before.map((s) => s.filenode));
      expect((await rowOf(live!))?.part).toBe(3);
      await first.query('COMMIT');
    } finally {
      await first.query('ROLLBACK').catch(() => {});
      first.release();
    }
    expect(await rotate(p, AT_1)).toEqual({ truncated: [2, 3], busy: [], moved: 1 });
  });

  it('frees the dead rows a held REPEATABLE READ snapshot keeps from vacuum', async () => {
    const report = await holdSnapshot(p);
    try {
      await insert(2, 2_000);
      await empty(2);
      const written = (await ringState(p))[2]!.bytes;
      await p.query('VACUUM sagabox.queue_messages_2');
      // The report's snapshot is older than every deleted row: vacuum removed none of them.
      expect((await ringState(p))[2]!.bytes).toBe(written);
      expect(written).toBeGreaterThan(100_000);

      expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 0 });
      expect((await ringState(p))[2]!.bytes).toBe(0);
      // The report goes on reading what it reads.
      expect((await report.client.query('SELECT count(*)::int AS n FROM sagabox.queues')).rows[0]).toBeDefined();
    } finally {
      await report.release();
    }
  });

  it('refuses to run under REPEATABLE READ, whose snapshot predates its locks: a message committed in between is never truncated', async () => {
    await insert(2, 100);
    await empty(2);
    const before = await ringState(p);
    const caller = await p.connect();
    try {
      await caller.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await caller.query('SELECT 1');
      // Committed after the caller's snapshot, before its rotation: invisible to that snapshot.
      const [late] = await insert(2, 1);
      const err = await rotate(caller, AT_1).catch((e: unknown) => e);
      await caller.query(err instanceof Error ? 'ROLLBACK' : 'COMMIT');
      expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = $1', [late])).toBe(1);
      expect((await ringState(p))[2]!.filenode).toBe(before[2]!.filenode);
      expect((err as { code?: string }).code).toBe('25000');
    } finally {
      await caller.query('ROLLBACK').catch(() => {});
      caller.release();
    }
  });

  it('a worker whose connections default to REPEATABLE READ still rotates: it calls the function in a READ COMMITTED transaction of its own', async () => {
    const rr = new pg.Pool({ connectionString: db.url, max: 6, options: '-c default_transaction_isolation=repeatable\\ read' });
    const report = await holdSnapshot(p);
    let handled = 0;
    const worker = createWorker({ pool: rr, queue: 'rq', concurrency: 2, trickleVacuum: false, handler: async () => { handled++; } });
    try {
      expect((await rr.query<{ transaction_isolation: string }>('SHOW transaction_isolation')).rows[0]!.transaction_isolation).toBe('repeatable read');
      const before = await ringState(p);
      await worker.start();
      // About 400 messages a second for up to 10 s, in the clock's slot: each slot gets
      // hundreds of dead rows a turn, which the held snapshot keeps from vacuum.
      const deadline = Date.now() + 10_000;
      let rotated = false;
      while (!rotated && Date.now() < deadline) {
        await p.query(
          `INSERT INTO sagabox.queue_messages (queue, id, topic, payload, created_at)
           SELECT 'rq', gen_random_uuid(), 'rq.x', '{}', now() FROM generate_series(1, 40)`,
        );
        await new Promise((r) => setTimeout(r, 100));
        const now = await ringState(p);
        rotated = now.some((slot, i) => slot.filenode !== before[i]!.filenode);
      }
      expect(handled).toBeGreaterThan(0);
      expect(rotated).toBe(true);
    } finally {
      await worker.stop();
      await report.release();
      await rr.end();
    }
  });
});
