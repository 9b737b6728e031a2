import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { prepare, publish } from '@sagabox/core';
import { addDirectRoute, getMessage, listMessages, maintainStorage, outboxStats, queueStats, type MessageSummary } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';

const { pool } = await useDatabase();
const p = pool(4);

// Direct routes put published messages straight into the queue, in the producer's transaction.
await addDirectRoute(p, { topic: 'mail.#', queue: 'mail' });
const ids = async (page: Promise<{ messages: MessageSummary[] }>): Promise<string[]> => (await page).messages.map((m) => m.id);

/** One message in each state of the queue `mail`, plus outbox messages; ids by state. */
async function seed(): Promise<Record<string, string>> {
  const [ready, inFlight, retrying, scheduled, overdue] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()];
  await publish(p, [
    { id: ready, topic: 'mail.welcome', key: 'cust-1', group: 'tenant-a', payload: { to: 'a@example.com' } },
    { id: inFlight, topic: 'mail.welcome', key: 'cust-2', payload: { to: 'b@example.com' } },
    { id: retrying, topic: 'mail.invoice', group: 'tenant-b', payload: { to: 'c@example.com' } },
    { id: scheduled, topic: 'mail.reminder', payload: { to: 'd@example.com' }, delayMs: 3_600_000 },
    { id: overdue, topic: 'mail.reminder', payload: { to: 'e@example.com' }, headers: { 'correlation-id': 'c-1' } },
  ]);
  // The states a worker's claim and a failed attempt leave behind.
  await p.query(`UPDATE sagabox.queue_messages SET lease_token = gen_random_uuid(), locked_until = now() + interval '30 seconds',
                   locked_by = 'worker-7' WHERE id = $1`, [inFlight]);
  await p.query(`UPDATE sagabox.queue_messages SET attempts = 3, run_at = now() + interval '40 seconds',
                   last_error = 'SMTP 451: mailbox busy' WHERE id = $1`, [retrying]);
  // Due since 10 minutes, published an hour ago: overdue by 10 minutes, not an hour.
  await p.query(`UPDATE sagabox.queue_messages SET created_at = now() - interval '1 hour', run_at = now() - interval '10 minutes' WHERE id = $1`, [overdue]);
  return { ready, inFlight, retrying, scheduled, overdue };
}

describe('listMessages and getMessage', () => {
  it('lists a queue by state, saying why each message waits', async () => {
    const s = await seed();
    const all = await listMessages(p, { queue: 'mail' });
    expect(all.next).toBeNull();
    expect(Object.fromEntries(all.messages.map((m) => [m.id, m.state]))).toEqual({
      [s.ready!]: 'ready', [s.inFlight!]: 'in_flight', [s.retrying!]: 'retrying', [s.scheduled!]: 'scheduled', [s.overdue!]: 'ready',
    });
    const [leased] = (await listMessages(p, { queue: 'mail', state: 'in_flight' })).messages;
    expect(leased).toMatchObject({ id: s.inFlight, lockedBy: 'worker-7', key: 'cust-2' });
    expect(leased!.lockedUntil!.getTime()).toBeGreaterThan(Date.now());
    const [failing] = (await listMessages(p, { queue: 'mail', state: 'retrying' })).messages;
    expect(failing).toMatchObject({ id: s.retrying, attempts: 3, lastError: 'SMTP 451: mailbox busy', group: 'tenant-b' });
    expect(failing!.runAt.getTime()).toBeGreaterThan(Date.now());
    expect(await ids(listMessages(p, { queue: 'mail', state: 'scheduled' }))).toEqual([s.scheduled]);

    // Filters: topic, key, group, id, error text (case-insensitive); they combine.
    expect(await ids(listMessages(p, { queue: 'mail', topic: 'mail.reminder' }))).toEqual([s.scheduled, s.overdue]);
    expect(await ids(listMessages(p, { queue: 'mail', key: 'cust-1' }))).toEqual([s.ready]);
    expect(await ids(listMessages(p, { queue: 'mail', group: 'tenant-b' }))).toEqual([s.retrying]);
    expect(await ids(listMessages(p, { queue: 'mail', id: s.overdue! }))).toEqual([s.overdue]);
    expect(await ids(listMessages(p, { queue: 'mail', errorContains: 'MAILBOX' }))).toEqual([s.retrying]);
    expect(await ids(listMessages(p, { queue: 'mail', topic: 'mail.reminder', state: 'ready' }))).toEqual([s.overdue]);

    // Stats: retrying apart from scheduled; the oldest age counts from when a message is due.
    const [stats] = await queueStats(p, { queues: ['mail'] });
    expect(stats).toMatchObject({ ready: 2, inFlight: 1, retrying: 1, scheduled: 1, delayed: 2 });
    expect(stats!.oldestAgeMs).toBeGreaterThanOrEqual(600_000);
    expect(stats!.oldestAgeMs).toBeLessThan(1_800_000);
    await p.query(`DELETE FROM sagabox.queue_messages WHERE queue = 'mail'`);
  });

  it('pages beyond any window with a cursor, in publish order, while messages come and go', async () => {
    const published: string[] = [];
    for (let i = 0; i < 7; i++) published.push(...(await publish(p, Array.from({ length: 10 }, (_, j) => ({ topic: 'mail.bulk', payload: { i, j } })))).ids);
    const seen: string[] = [];
    let page = await listMessages(p, { queue: 'mail', limit: 25 });
    let pages = 1;
    // A message acked under the reader's feet does not shift the next page.
    await p.query(`DELETE FROM sagabox.queue_messages WHERE id = $1`, [published[3]]);
    seen.push(...page.messages.map((m) => m.id));
    while (page.next) {
      page = await listMessages(p, { queue: 'mail', limit: 25, after: page.next });
      seen.push(...page.messages.map((m) => m.id));
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(published);
    await p.query(`DELETE FROM sagabox.queue_messages WHERE queue = 'mail'`);
  });

  it('lists the outbox: ready, retrying after a failed delivery, prepared half messages with their check', async () => {
    const { ids: [ready, retrying] } = await publish(p, [{ topic: 'orders.created', payload: 1 }, { topic: 'orders.created', payload: 2 }]);
    await p.query(`UPDATE sagabox.outbox SET attempts = 2, available_at = now() + interval '1 minute', last_error = 'broker unreachable' WHERE id = $1`, [retrying]);
    const half = await prepare(p, { topic: 'payments.charged', payload: { amount: 5 } });
    const page = await listMessages(p, {});
    expect(page.messages.map((m) => [m.id, m.state, m.queue])).toEqual([[ready, 'ready', null], [retrying, 'retrying', null], [half.id, 'prepared', null]]);
    expect(page.messages[2]).toMatchObject({ checks: 0, checkAt: expect.any(Date) });
    expect(await ids(listMessages(p, { state: 'prepared' }))).toEqual([half.id]);

    const whole = await getMessage(p, half.id);
    expect(whole).toMatchObject({ id: half.id, copies: [{ state: 'prepared', payload: { amount: 5 } }], deadLetters: [], handledBy: [] });
    expect(whole!.decisions.map((d) => d.decision)).toEqual(['prepared']);
    await p.query(`DELETE FROM sagabox.outbox`);
  });

  it('shows one message whole: each copy with payload and headers, its dead letters and the consumers that handled it', async () => {
    const { ids: [id] } = await publish(p, { topic: 'mail.receipt', payload: { to: 'f@example.com' }, headers: { 'correlation-id': 'c-9' } });
    await p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
                   VALUES ('queue', 'mail', $1, 'mail.receipt', '{}', 'failed', 'boom', 5, now())`, [id]);
    await p.query(`INSERT INTO sagabox.inbox (consumer, message_id) VALUES ('mail', $1)`, [id]);
    const m = await getMessage(p, id!);
    expect(m).toMatchObject({
      id,
      copies: [{ queue: 'mail', state: 'ready', payload: { to: 'f@example.com' }, headers: { 'correlation-id': 'c-9' } }],
      deadLetters: [{ reason: 'failed', error: 'boom', attempts: 5 }],
      handledBy: [{ consumer: 'mail', processedAt: expect.any(Date) }],
    });
    expect(await getMessage(p, randomUUID())).toBeNull();
  });

  it("keeps an index by message id in every dead-letter partition, for getMessage's lookup", async () => {
    await maintainStorage(p, { retention: {} });
    const id = randomUUID();
    await p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
                   VALUES ('queue', 'mail', $1, 'mail.lost', '{}', 'failed', 'boom', 5, now())`, [id]);
    expect((await getMessage(p, id))?.deadLetters).toEqual([expect.objectContaining({ id, topic: 'mail.lost' })]);
    // Each partition, the default one and those maintainStorage made, has an index led by
    // the message id. (A plan on tables this small is a coin toss between it and a
    // filtered walk of the primary key, so the index itself is checked.)
    const { rows } = await p.query<{ part: string; by_id: boolean }>(`
      SELECT c.relname AS part, EXISTS (
               SELECT 1 FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]
               WHERE x.indrelid = c.oid AND a.attname = 'id') AS by_id
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = 'sagabox.dead_letters'::regclass ORDER BY 1`);
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.filter((r) => !r.by_id)).toEqual([]);
  });

  it("counts the relay's dead letters in the outbox stats, apart from the queues'", async () => {
    const before = (await outboxStats(p)).dead;
    await p.query(`INSERT INTO sagabox.dead_letters (source, id, topic, payload, reason, error, attempts, created_at)
                   VALUES ('outbox', gen_random_uuid(), 'nowhere.x', '{}', 'unroutable', 'no destination', 0, now())`);
    expect((await outboxStats(p)).dead).toBe(before + 1);
  });

  it('refuses bad filters before any SQL, naming every problem', async () => {
    await expect(listMessages(p, { queue: 'mail', state: 'lost' as never, limit: 0, id: 'x', after: '1;', errorContains: '' })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: expect.stringMatching(/state must be one of .*; id must be a UUID; errorContains must be 1-200 characters; after must be a cursor returned as next; limit must be an integer from 1 to 1000/),
    });
    await expect(listMessages(p, { state: 'in_flight' })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
    await expect(listMessages(p, { queue: 'bad queue' })).rejects.toMatchObject({ code: 'INVALID_QUEUE_NAME' });
    await expect(listMessages(p, { queue: 'nope' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(getMessage(p, "1' OR 1=1")).rejects.toMatchObject({ code: 'INVALID_OPTIONS' });
  });
});
