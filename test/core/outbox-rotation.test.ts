import { beforeEach, describe, expect, it } from 'vitest';
import { commitHalfMessage, createRelay, prepare, publish, rollbackHalfMessage, type Destination } from '@sagabox/core';
import { publishSql } from '../../packages/core/src/publish/publish-sql.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { startChild } from '../support/child.js';
import { expectEachOnceInKeyOrder, produceKeyed } from '../support/keyed-producers.js';
import { holdSnapshot, ringState, rotate, timeInSlot } from '../support/queue-ring.js';
import { uuidv7At } from '../support/uuidv7-at.js';

const { db, pool, count } = await useDatabase();
const p = pool(8);
// What the relays of these tests delivered, in delivery order (the `effects` of keyed-producers).
await p.query('CREATE TABLE effects (seq bigint GENERATED ALWAYS AS IDENTITY, message_id uuid NOT NULL, n int)');
// These tests make slots of dead rows and expect their pages on disk; autovacuum (on in
// the embedded and container servers) would cut an empty slot's pages away, and the
// function skips a slot without pages.
for (const s of [0, 1, 2, 3]) await p.query(`ALTER TABLE sagabox.outbox_${s} SET (autovacuum_enabled = false)`);

/**
 * rotate_outbox(p_now) looks at the slots now+1 and now+2 of the ring, so at
 * timeInSlot(1) it empties slots 2 and 3 (what is left in them goes to slot 1, the
 * clock's) and leaves 1 and 0 (the previous) alone.
 */
const AT_1 = { now: timeInSlot(1), ring: 'outbox' as const };
/** A UUIDv7 whose ring slot (queue_part) is `slot`. */
const idInSlot = (slot: number): string => uuidv7At(timeInSlot(slot).getTime());

/** Records each delivered message in `effects` inside the relay's transaction: a delivery and its outbox delete commit together. */
const recorder: Destination = {
  name: 'effects',
  matches: (topic) => topic.startsWith('o.'),
  async deliver(messages, { client }) {
    await client.query(
      'INSERT INTO effects (message_id, n) SELECT id, n FROM unnest($1::uuid[], $2::int[]) WITH ORDINALITY AS t(id, n, o) ORDER BY o',
      [messages.map((m) => m.id), messages.map((m) => (JSON.parse(m.payload) as { n?: number }).n ?? null)],
    );
  },
};
const delivered = async (): Promise<string[]> => (await p.query<{ message_id: string }>('SELECT message_id FROM effects ORDER BY seq')).rows.map((r) => r.message_id);
/** Runs relay batches until one claims nothing. */
const drain = async (relay: ReturnType<typeof createRelay>): Promise<void> => {
  while ((await relay.runOnce()) > 0);
};

/** `n` ready rows written by hand into slot `part`; resolves to their ids. */
const insert = async (part: number, n: number, o: { set?: string; key?: string; topic?: string } = {}): Promise<string[]> => {
  const { rows } = await p.query<{ id: string }>(
    `INSERT INTO sagabox.outbox (id, part, topic, key, payload)
     SELECT gen_random_uuid(), $1, $4, $3, jsonb_build_object('n', g, 'pad', repeat('x', 100))
     FROM generate_series(1, $2) g ORDER BY g RETURNING id`,
    [part, n, o.key ?? null, o.topic ?? 'o.x'],
  );
  const ids = rows.map((r) => r.id);
  if (o.set) await p.query(`UPDATE sagabox.outbox SET ${o.set} WHERE id = ANY($1)`, [ids]);
  return ids;
};
/** Fills slot `part` with `n` rows and deletes them (as the relay does): a slot of dead rows. */
const deadRows = async (part: number, n: number): Promise<void> => {
  const ids = await insert(part, n);
  await p.query('DELETE FROM sagabox.outbox WHERE id = ANY($1)', [ids]);
};
/** The rows of a message: every column but the slot, and the slot. */
const rowsOf = async (id: string) =>
  (await p.query<{ part: number; row: Record<string, unknown> }>(
    `SELECT o.part, to_jsonb(o) - 'part' AS row FROM sagabox.outbox o WHERE id = $1 ORDER BY seq`, [id])).rows;

/** The whole outbox on disk (heap and indexes) and its dead rows by the statistics. */
const sample = async (): Promise<{ bytes: number; dead: number }> => {
  const { rows } = await p.query<{ bytes: string; dead: string }>(
    `SELECT sum(pg_total_relation_size(relid)) AS bytes, sum(pg_stat_get_dead_tuples(relid)) AS dead
     FROM pg_partition_tree('sagabox.outbox') WHERE isleaf`);
  return { bytes: Number(rows[0]!.bytes), dead: Number(rows[0]!.dead) };
};

beforeEach(async () => {
  await p.query('TRUNCATE sagabox.outbox, effects');
});

describe('rotate_outbox', () => {
  it('truncates an old slot of dead rows, moves its retrying, held and prepared rows to the clock\'s slot with every column and seq kept; they are then delivered and committed in key order', async () => {
    await deadRows(2, 300);
    const [retrying] = await insert(2, 1, { key: 'k', set: `attempts = 2, last_error = 'boom', available_at = now() + interval '1 hour'` });
    // Left for later by a relay that had no destination for it.
    const [held] = await insert(2, 1, { topic: 'o.unknown', set: `last_error = 'no route for this topic on relay old', available_at = now() + interval '1 hour'` });
    const half = idInSlot(2);
    await prepare(p, { id: half, topic: 'o.half', key: 'k', payload: { n: 7 } }, { checkAfterMs: 3_600_000 });
    // The key's next message, in the clock's slot.
    const [later] = await insert(1, 1, { key: 'k' });
    const before = await Promise.all([retrying!, held!, half].map(rowsOf));
    expect(before.map((r) => r.map((x) => x.part))).toEqual([[2], [2], [2]]);
    const ring = await ringState(p, 'sagabox', 'outbox');

    expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 3 });
    const after = await Promise.all([retrying!, held!, half].map(rowsOf));
    expect(after).toEqual(before.map((r) => [{ part: 1, row: r[0]!.row }]));
    const now = await ringState(p, 'sagabox', 'outbox');
    expect(now[2]!.filenode).not.toBe(ring[2]!.filenode);
    expect(now[2]!.bytes).toBe(0);

    const relay = createRelay({ pool: pool(2), destinations: [recorder], listen: false });
    try {
      await p.query('UPDATE sagabox.outbox SET available_at = now() WHERE id = ANY($1)', [[retrying, held]]);
      await drain(relay);
      // The half message holds its key's later message back until it is committed.
      expect((await delivered()).sort()).toEqual([retrying!, held!].sort());
      expect(await commitHalfMessage(p, half)).toEqual({ id: half, decision: 'commit', repeated: false });
      await drain(relay);
    } finally {
      await relay.stop();
    }
    const order = await delivered();
    expect(order.filter((id) => id !== held)).toEqual([retrying, half, later]);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });

  it('reports busy a slot with an uncommitted publish in it and truncates nothing there; the message is moved once committed and delivered', async () => {
    await deadRows(2, 300);
    const producer = await p.connect();
    const id = idInSlot(2);
    try {
      await producer.query('BEGIN');
      await publish(producer, { id, topic: 'o.open', payload: { n: 1 } });
      const ring = await ringState(p, 'sagabox', 'outbox');
      expect(await rotate(p, AT_1)).toEqual({ truncated: [], busy: [2], moved: 0 });
      expect((await ringState(p, 'sagabox', 'outbox'))[2]!.filenode).toBe(ring[2]!.filenode);
      await producer.query('COMMIT');
    } finally {
      await producer.query('ROLLBACK').catch(() => {});
      producer.release();
    }
    expect((await rowsOf(id)).map((r) => r.part)).toEqual([2]);
    expect(await rotate(p, AT_1)).toEqual({ truncated: [2], busy: [], moved: 1 });
    expect((await rowsOf(id)).map((r) => r.part)).toEqual([1]);
    const relay = createRelay({ pool: pool(2), destinations: [recorder], listen: false });
    try {
      await drain(relay);
    } finally {
      await relay.stop();
    }
    expect(await delivered()).toEqual([id]);
  });

  it('a half message moved by a rotation: a repeated prepare changes nothing, and commit, rollback and the check-back find it', async () => {
    const [a, b, c] = [idInSlot(2), idInSlot(2), idInSlot(3)];
    for (const id of [a, b, c]) await prepare(p, { id, topic: 'o.half', payload: { n: 1 } }, { checkAfterMs: id === c ? 0 : 3_600_000 });
    expect((await rotate(p, AT_1)).moved).toBe(3);
    for (const id of [a, b, c]) expect((await rowsOf(id)).map((r) => r.part)).toEqual([1]);

    // Prepared again with another payload: the moved row stays the only one, unchanged.
    const moved = await rowsOf(a);
    expect(await prepare(p, { id: a, topic: 'o.half', payload: { n: 2 } })).toEqual({ id: a });
    expect(await rowsOf(a)).toEqual(moved);

    expect((await commitHalfMessage(p, a)).decision).toBe('commit');
    expect((await rollbackHalfMessage(p, b)).decision).toBe('rollback');
    expect(await rowsOf(b)).toEqual([]);
    // A rolled-back id is never prepared again, wherever its row was.
    await expect(prepare(p, { id: b, topic: 'o.half', payload: { n: 3 } })).rejects.toMatchObject({ code: 'HALF_MESSAGE_ALREADY_DECIDED' });

    const relay = createRelay({ pool: pool(2), destinations: [recorder], listen: false });
    try {
      relay.onCheck('o.half', async () => 'commit');
      expect(await relay.runChecksOnce()).toBe(1);
      await drain(relay);
    } finally {
      await relay.stop();
    }
    expect((await delivered()).sort()).toEqual([a, c].sort());
    expect((await p.query<{ payload: unknown }>(`SELECT payload FROM sagabox.queue_messages WHERE id = $1`, [a])).rows).toEqual([]);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });

  it('the common publish writes its id\'s slot partition, with seq from the identity the migrations made', async () => {
    const { rows } = await p.query<{ seq: string }>(`SELECT pg_get_serial_sequence('sagabox.outbox', 'seq') AS seq`);
    expect(rows[0]!.seq).toBe('sagabox.outbox_seq_seq');
    const sql = publishSql('sagabox');
    for (const slot of [0, 1, 2, 3]) {
      expect(sql.insertOutbox[slot]).toHaveLength(4);
      for (const text of sql.insertOutbox[slot]!) {
        expect(text).toContain(`INSERT INTO "sagabox".outbox_${slot} `);
        expect(text).toContain(`nextval('"sagabox".outbox_seq_seq'::regclass)`);
      }
    }
    const ids = [0, 1, 2, 3].map(idInSlot);
    for (const id of ids) await publish(p, { id, topic: 'o.x', payload: {} });
    const parts = await p.query<{ part: number }>('SELECT part FROM sagabox.outbox ORDER BY seq');
    expect(parts.rows.map((r) => r.part)).toEqual([0, 1, 2, 3]);
  });

  it('keyed producers on several connections, a relay, rotations every 100 ms and a REPEATABLE READ snapshot held throughout: each message delivered once, in key order, and the ring holds a few seconds of dead rows at most', async () => {
    const report = await holdSnapshot(p);
    const relay = createRelay({ pool: pool(4), destinations: [recorder], pollIntervalMs: 20, batchSize: 50 });
    let rotating = true;
    const rotations = { truncated: 0, busy: 0 };
    const rotator = (async () => {
      while (rotating) {
        const r = await rotate(p, { ring: 'outbox', waitMs: 50 });
        rotations.truncated += r.truncated.length;
        rotations.busy += r.busy.length;
        await new Promise((res) => setTimeout(res, 100));
      }
    })();
    const samples: { bytes: number; dead: number }[] = [];
    try {
      await relay.start();
      const production = produceKeyed(pool(16), { topic: 'o.keyed', keys: 16, pauseMs: 20 });
      const started = Date.now();
      while (Date.now() < started + 12_000) {
        await new Promise((res) => setTimeout(res, 250));
        samples.push(await sample());
      }
      await production.stop();
      const seconds = (Date.now() - started) / 1000;
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 20_000);
      await relay.stop();
      await expectEachOnceInKeyOrder(p, production.published);

      // Under the held snapshot vacuum frees nothing: without rotations the outbox would
      // keep a dead row per message, and every claim would walk all of them (its primary
      // keys' entries, and the head-of-key probes the (key, seq) entries). The ring held
      // the rows of a few seconds at most: the clock's slot and the one before, which are
      // never truncated, and what slots found busy kept a little longer.
      const total = production.published.length;
      const perSecond = total / seconds;
      expect(total).toBeGreaterThan(1_500);
      expect(rotations.truncated).toBeGreaterThan(4);
      const peakDead = Math.max(...samples.map((s) => s.dead));
      const third = Math.floor(samples.length / 3);
      const early = Math.max(...samples.slice(0, third).map((s) => s.bytes));
      const late = Math.max(...samples.slice(-third).map((s) => s.bytes));
      const seen = `${total} messages (${Math.round(perSecond)}/s), peak ${peakDead} dead rows, peak bytes ${early} in the first third, ${late} in the last, ${rotations.truncated} slots truncated, ${rotations.busy} busy`;
      // The dead rows a claim walks: those of the clock's slot and the one before it (never
      // truncated) and of a slot waiting for its turn, a few seconds of messages.
      expect(peakDead, seen).toBeLessThan(6 * perSecond);
      expect(peakDead, seen).toBeLessThan(total / 3);
      // The outbox on disk stops growing once the ring has turned.
      expect(late, seen).toBeLessThan(3 * early);
    } finally {
      rotating = false;
      await rotator;
      await relay.stop();
      await report.release();
    }
  });

  it('a relay alone turns the ring under a steady flow with a REPEATABLE READ snapshot held: its own overlapping batches do not keep slots from being truncated, and every message is delivered once', async () => {
    const report = await holdSnapshot(p);
    // Batches of 20 overlap (two in flight), so this relay's own transactions hold every
    // slot much of the time; nothing else rotates.
    const slow: Destination = { ...recorder, async deliver(messages, ctx) {
      await recorder.deliver(messages, ctx);
      await new Promise((res) => setTimeout(res, 10));
    } };
    const relay = createRelay({ pool: pool(4), destinations: [slow], pollIntervalMs: 20, batchSize: 20, batchesInFlight: 2 });
    let producing = true;
    let published = 0;
    let truncations = 0;
    let peakDead = 0;
    try {
      await relay.start();
      const producer = (async () => {
        while (producing) {
          const { rowCount } = await p.query(`INSERT INTO sagabox.outbox (id, topic, payload) SELECT gen_random_uuid(), 'o.x', jsonb_build_object('n', g) FROM generate_series(1, 12) g`);
          published += rowCount ?? 0;
          await new Promise((res) => setTimeout(res, 10));
        }
      })();
      let last = await ringState(p, 'sagabox', 'outbox');
      const started = Date.now();
      while (Date.now() < started + 10_000) {
        await new Promise((res) => setTimeout(res, 100));
        const now = await ringState(p, 'sagabox', 'outbox');
        truncations += now.filter((slot, i) => slot.filenode !== last[i]!.filenode).length;
        last = now;
        peakDead = Math.max(peakDead, (await sample()).dead);
      }
      producing = false;
      await producer;
      const seconds = (Date.now() - started) / 1000;
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 30_000);
      await relay.stop();
      const ids = await delivered();
      expect(ids.length).toBe(published);
      expect(new Set(ids).size).toBe(published);
      const seen = `${published} messages in ${seconds.toFixed(1)} s, ${truncations} truncations, peak ${peakDead} dead rows`;
      // 10 s is two turns of the ring and more. Without the relay's rotations nothing is
      // truncated and every delivered row stays dead (the snapshot holds vacuum back);
      // with them, about 3 s of messages.
      expect(truncations, seen).toBeGreaterThanOrEqual(3);
      expect(peakDead, seen).toBeLessThan(published * 0.6);
    } finally {
      producing = false;
      await relay.stop();
      await report.release();
    }
  });

  it('relays killed by SIGKILL mid-batch and mid-rotation, again and again, lose nothing, repeat nothing in a queue and keep key order', async () => {
    await p.query(`INSERT INTO sagabox.queues (name) VALUES ('killed') ON CONFLICT DO NOTHING`);
    const production = produceKeyed(pool(6), { topic: 'kill.keyed', keys: 6, pauseMs: 25 });
    const ring = await ringState(p, 'sagabox', 'outbox');
    try {
      for (let round = 0; round < 6; round++) {
        const relay = startChild('relay-child.mjs', { DATABASE_URL: db.url, ROUTE_TOPIC: 'kill.*', ROUTE_QUEUE: 'killed', BATCH_SIZE: '20', SLOW_MS: '20', ROTATE_MS: '30' });
        await relay.waitForLine(/^ready$/);
        await new Promise((res) => setTimeout(res, 300 + Math.floor(Math.random() * 500)));
        await relay.kill('SIGKILL');
      }
    } finally {
      await production.stop();
    }
    // The killed relays did turn the ring.
    expect((await ringState(p, 'sagabox', 'outbox')).filter((slot, i) => slot.filenode !== ring[i]!.filenode).length).toBeGreaterThan(0);
    const relay = createRelay({ pool: pool(3), routes: [{ topic: 'kill.*', queue: 'killed' }], pollIntervalMs: 50 });
    try {
      await relay.start();
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0, 30_000);
    } finally {
      await relay.stop();
    }
    // A queue keeps one row per id: in queue order, each key's messages in publish order.
    const { rows } = await p.query<{ id: string; n: number }>(
      `SELECT id, (payload->>'n')::int AS n FROM sagabox.queue_messages WHERE queue = 'killed' ORDER BY seq`);
    expect(production.published.length).toBeGreaterThan(300);
    expect(rows.map((r) => r.id).sort()).toEqual([...production.published].sort());
    const next = new Map<number, number>();
    for (const { n } of rows) {
      const key = Math.floor(n / 1_000_000);
      expect(n, `key ${key}`).toBe(key * 1_000_000 + (next.get(key) ?? 0));
      next.set(key, (n % 1_000_000) + 1);
    }
  });
});
