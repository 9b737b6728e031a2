import { describe, expect, it } from 'vitest';
import { createRelay, publish, type Destination, type RelayedMessage } from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';

const { pool, count } = await useDatabase();
const p = pool(4);
const { track } = stopAfterEach();

// The relay sends BEGIN with its claim, and a batch's writes with its COMMIT, each pair
// in one round trip: a write that fails must still commit nothing.
describe('createRelay: a batch and its commit', () => {
  const memory = (delivered: string[]): Destination => ({
    name: 'memory',
    external: true,
    matches: () => true,
    async deliver(messages) {
      delivered.push(...messages.map((m) => m.id));
    },
  });

  it('a removal that fails commits nothing: the batch stays in the outbox with its attempts, and the next batch goes through', async () => {
    await p.query(`CREATE FUNCTION refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'delete refused'; END $$`);
    await p.query('CREATE TRIGGER refuse_delete BEFORE DELETE ON sagabox.outbox FOR EACH ROW EXECUTE FUNCTION refuse_delete()');
    const delivered: string[] = [];
    const relay = track(createRelay({ pool: p, destinations: [memory(delivered)], listen: false }));
    await publish(p, [
      { topic: 'orders.placed', key: 'k', payload: { i: 1 } },
      { topic: 'orders.placed', payload: { i: 2 } },
    ]);

    await expect(relay.runOnce()).rejects.toThrow(/delete refused/);
    expect(delivered).toHaveLength(2);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox WHERE attempts = 0 AND last_error IS NULL')).toBe(2);

    await p.query('DROP TRIGGER refuse_delete ON sagabox.outbox');
    expect(await relay.runOnce()).toBe(2);
    expect(delivered).toHaveLength(4);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
  });

  it('a retry and a dead letter are committed with the removal of the rest of the batch', async () => {
    const delivered: string[] = [];
    const failing: Destination = {
      ...memory(delivered),
      async deliver(messages) {
        if (messages.some((m) => m.topic === 'orders.bad')) throw new Error('refused by the test');
        delivered.push(...messages.map((m) => m.id));
      },
    };
    const relay = track(createRelay({ pool: p, destinations: [failing], listen: false, retry: { maxAttempts: 2, baseDelayMs: 1, maxDelayMs: 1 } }));
    await publish(p, [
      { topic: 'orders.placed', payload: { i: 1 } },
      { topic: 'orders.bad', payload: { i: 2 } },
      { topic: 'orders.placed', payload: { i: 3 } },
    ]);
    expect(await relay.runOnce()).toBe(3);
    expect(delivered).toHaveLength(2);
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'orders.bad' AND attempts = 1 AND last_error LIKE '%refused by the test%'`)).toBe(1);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(1);

    await new Promise((r) => setTimeout(r, 20));
    expect(await relay.runOnce()).toBe(1);
    expect(await count('SELECT count(*) AS n FROM sagabox.outbox')).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE topic = 'orders.bad' AND reason = 'failed' AND attempts = 2`)).toBe(1);
  });

  it("hands a destination the row's times as Dates to the millisecond", async () => {
    const seen: RelayedMessage[] = [];
    const relay = track(createRelay({ pool: p, destinations: [{ ...memory([]), deliver: async (ms) => void seen.push(...ms) }], listen: false }));
    const runAt = new Date('2026-01-02T03:04:05.678Z');
    const expiresAt = new Date('2999-12-31T23:59:59.999Z');
    await publish(p, [
      { topic: 'orders.placed', payload: { i: 1 }, availableAt: runAt, expiresAt },
      { topic: 'orders.placed', payload: { i: 2 } },
    ]);
    const { rows } = await p.query<{ id: string; ms: string }>(`SELECT id, (extract(epoch FROM date_trunc('milliseconds', created_at)) * 1000)::bigint::text AS ms FROM sagabox.outbox`);
    expect(await relay.runOnce()).toBe(2);
    const byPayload = new Map(seen.map((m) => [JSON.parse(m.payload).i as number, m]));
    expect(byPayload.get(1)).toMatchObject({ runAt, expiresAt });
    expect(byPayload.get(2)).toMatchObject({ runAt: null, expiresAt: null });
    for (const r of rows) expect(String(seen.find((m) => m.id === r.id)?.createdAt.getTime())).toBe(r.ms);
  });

  it('hands its connections back to the pool in ordinary (not pipelined) mode', async () => {
    const relay = track(createRelay({ pool: p, destinations: [memory([])], listen: false }));
    await publish(p, [{ topic: 'orders.placed', payload: { i: 1 } }]);
    expect(await relay.runOnce()).toBe(1);
    const clients = await Promise.all(Array.from({ length: 4 }, () => p.connect()));
    try {
      for (const c of clients) expect(c.pipeline).toBe(false);
    } finally {
      for (const c of clients) c.release();
    }
  });
});
