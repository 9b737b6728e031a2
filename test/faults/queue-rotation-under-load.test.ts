import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createWorker } from '@sagabox/core';
import { addDirectRoute } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { startChild, type Child } from '../support/child.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';
import { holdSnapshot, ringState, rotate } from '../support/queue-ring.js';
import { expectEachOnceInKeyOrder, produceKeyed, type KeyedProduction } from '../support/keyed-producers.js';

const { db, pool, count } = await useDatabase();
const p = pool(16);
const running = stopAfterEach();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Watches the ring every few ms, rotating it too when `rotate` (besides what the workers
 * do): `truncations` counts the partitions' relfilenode changes (whoever truncated them),
 * `freedBytes` adds up the size each truncated partition had at the look before, `bytes`
 * is the ring's size at the last look; `own`, `busy` and `moved` add up what the test's
 * calls returned; `movedSeen` is the most moved messages (whoever moved them) seen at once.
 */
type RingWatch = ReturnType<typeof watchRing>;
function watchRing(db: pg.Pool, o: { rotate: boolean }) {
  const seen = { truncations: 0, bytes: 0, freedBytes: 0, own: 0, busy: 0, moved: 0, movedSeen: 0 };
  let watching = true;
  const loop = (async () => {
    let last = await ringState(db);
    let lastBusy = 0;
    while (watching) {
      if (o.rotate) {
        // As the workers do: after a slot was found busy, wait a little for its lock, or a
        // loaded machine whose workers always hold a transaction never lets it go.
        const r = await rotate(db, { waitMs: seen.busy > lastBusy ? 50 : 0 });
        lastBusy = seen.busy;
        seen.own += r.truncated.length;
        seen.busy += r.busy.length;
        seen.moved += r.moved;
      }
      const now = await ringState(db);
      for (const [i, s] of now.entries()) {
        if (s.filenode === last[i]!.filenode) continue;
        seen.truncations++;
        seen.freedBytes += last[i]!.bytes;
      }
      seen.bytes = now.reduce((a, s) => a + s.bytes, 0);
      last = now;
      // A moved message is in another slot than its id's until it is handled.
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM sagabox.queue_messages WHERE part <> sagabox.queue_part(id)');
      seen.movedSeen = Math.max(seen.movedSeen, rows[0]!.n);
      await sleep(20);
    }
  })();
  return { seen, stop: async () => { watching = false; await loop; } };
}

const setUp = async (queue: string) => {
  await p.query('DROP TABLE IF EXISTS effects');
  await p.query('CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, message_id uuid NOT NULL, n int NOT NULL)');
  await p.query(`INSERT INTO sagabox.queues (name) VALUES ($1) ON CONFLICT DO NOTHING`, [queue]);
  await addDirectRoute(p, { topic: `${queue}.*`, queue });
};
const drained = (queue: string, published: string[]) =>
  waitFor('every message handled', async () =>
    (await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1`, [queue])) === 0 &&
    (await count('SELECT count(*) AS n FROM effects')) >= published.length, 30_000, 100);

/** What each test runs besides its workers: the held snapshot, the ring watcher, the producers. */
async function underLoad(queue: string, rotate: boolean, body: (production: KeyedProduction, ring: RingWatch) => Promise<void>): Promise<void> {
  await setUp(queue);
  const report = await holdSnapshot(p);
  const ring = watchRing(p, { rotate });
  // 16 keys at a rate two workers keep up with on two cores.
  const production = produceKeyed(p, { topic: `${queue}.x`, keys: 16, pauseMs: 40 });
  try {
    await body(production, ring);
  } finally {
    await production.stop().catch(() => {});
    await ring.stop();
    await report.release();
  }
}

const effectHandler = async (m: { id: string; payload: unknown }, { client }: { client: pg.PoolClient }) => {
  await client.query('INSERT INTO effects (message_id, n) VALUES ($1, $2)', [m.id, (m.payload as { n: number }).n]);
};

describe('queue_messages rotation under load', () => {
  it('producers, two workers and a held snapshot: the ring turns, every message has one effect in key order, dead rows stay bounded', async () => {
    await underLoad('rotl', true, async (production, ring) => {
      // No worker yet: the backlog ages into the rotated slots and is moved, so the slots
      // rotated later hold both moved and handled messages.
      await waitFor('a backlog moved', () => ring.seen.moved >= 20, 15_000);
      for (let i = 0; i < 2; i++) {
        const worker = running.track(createWorker({ pool: pool(4), name: `rotl-w${i}`, queue: 'rotl', concurrency: 2, batchSize: 10, leaseMs: 5_000, pollIntervalMs: 50, handler: effectHandler }));
        await worker.start();
      }
      // Two turns of the ring: each slot truncated twice, under load and the snapshot.
      // A turn takes 4 s at least; the rest of the wait is room for a loaded machine.
      await waitFor('eight truncations under load', () => ring.seen.truncations >= 8, 45_000).catch((err: Error) => {
        throw new Error(`${err.message} (${JSON.stringify(ring.seen)})`);
      });
      await production.stop();
      const { published } = production;
      const { bytes: bytesAtStop, freedBytes } = ring.seen;
      await drained('rotl', published);
      await expectEachOnceInKeyOrder(p, published);
      expect(published.length).toBeGreaterThan(500);

      // Without rotation the held snapshot would keep every page the ring was given in one
      // table (vacuum can remove none of it): what was freed plus what is left. The ring
      // keeps only the last few seconds' slots (the clock's, the previous, busy ones).
      expect(bytesAtStop).toBeLessThan((freedBytes + bytesAtStop) / 2);
      // Once the clock has moved on every slot is a target in turn: the whole ring is freed
      // while the snapshot is still held.
      await waitFor('the ring freed', () => ring.seen.bytes === 0, 10_000);
    });
  }, 100_000);

  it('a worker SIGKILLed again and again while it rotates in a tight loop, with producers and a second worker: nothing lost or doubled, keys in order', async () => {
    await underLoad('rotk', false, async (production, ring) => {
      // Four more keys of messages delayed 3 s: they sit in their slot until it is rotated,
      // so the child's rotations move messages all the time.
      const delayed = produceKeyed(p, { topic: 'rotk.x', keys: 4, firstKey: 100, pauseMs: 200, delayMs: 3_000 });
      try {
        const steady = running.track(createWorker({ pool: pool(4), name: 'rotk-steady', queue: 'rotk', concurrency: 2, batchSize: 10, leaseMs: 1_000, pollIntervalMs: 50, handler: effectHandler }));
        await steady.start();
        const child = { rotations: 0, moved: 0 }; // moved: for a failing run's report
        // Only the workers rotate here, the child most often: kills land in its rotations. A
        // killed child's batch stays leased for 3 s, and its keys' later messages wait behind
        // it: moved, leased by a dead worker or blocked, when their slot is rotated.
        for (let round = 0; round < 8; round++) {
          const proc: Child = startChild('worker-child.mjs', { DATABASE_URL: db.url, QUEUE: 'rotk', LEASE_MS: '3000', BATCH_SIZE: '10', INBOX_PURGE_MS: '0', ROTATE_LOOP: '1' });
          proc.process.stdout!.on('data', (d: Buffer) => {
            for (const [, moved] of d.toString().matchAll(/^rotated \S+ moved (\d+)$/gm)) {
              child.rotations++;
              child.moved += Number(moved);
            }
          });
          await proc.waitForLine(/^ready$/);
          await sleep(300 + Math.floor(Math.random() * 900));
          await proc.kill('SIGKILL');
        }
        await Promise.all([production.stop(), delayed.stop()]);
        const published = [...production.published, ...delayed.published];
        const { truncations, movedSeen } = ring.seen;
        await drained('rotk', published);
        await expectEachOnceInKeyOrder(p, published);
        expect(published.length).toBeGreaterThan(300);
        // The ring turned and moved messages while the kills went on, the killed worker rotating too.
        expect(truncations, JSON.stringify({ ...ring.seen, child })).toBeGreaterThanOrEqual(4);
        expect(child.rotations, 'rotations by the child').toBeGreaterThanOrEqual(1);
        expect(movedSeen, 'moved messages seen').toBeGreaterThanOrEqual(1);
      } finally {
        await delayed.stop().catch(() => {});
      }
    });
  }, 60_000);
});
