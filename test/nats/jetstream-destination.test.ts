import { describe, expect, it } from 'vitest';
import { createRelay, type Destination, type RelayedMessage } from '@sagabox/core';
import { createJetStreamDestination, NATS_HEADERS } from '@sagabox/nats';
import { publishCommitted } from '../support/in-transaction.js';
import { useDatabase } from '../support/test-pool.js';
import { useJetStream } from '../support/nats-server.js';
import { waitFor } from '../support/wait-for.js';

const { pool, count } = await useDatabase();
const p = pool(8);
const { server, jsm } = await useJetStream({ maxPayload: 64 * 1024 });
await jsm.streams.add({ name: 'ORDERS', subjects: ['orders.>'], duplicate_window: 120_000_000_000 });
await jsm.streams.add({ name: 'SMALL', subjects: ['small.>'], max_msg_size: 1024 });

const relayed = (over: Partial<RelayedMessage> = {}): RelayedMessage => ({
  seq: '1',
  id: '0190d6a4-7c3b-7000-8000-000000000001',
  topic: 'orders.created',
  key: null,
  payload: '{"n":1}',
  headers: '{}',
  runAt: null,
  expiresAt: null,
  attempts: 0,
  createdAt: new Date(),
  priority: 0,
  group: null,
  ...over,
});

const started = async (d: Destination): Promise<Destination> => {
  await d.start?.({ pool: p });
  await waitFor('connected', async () => {
    try {
      await d.deliver([], { client: undefined as never });
      return true;
    } catch {
      return false;
    }
  });
  return d;
};

describe('createJetStreamDestination', () => {
  it('rejects bad options before connecting, listing every problem', () => {
    expect(() => createJetStreamDestination({ routes: [], servers: 'http:/nope', subjectPrefix: 'a b', pubAckTimeoutMs: 0 } as never)).toThrowError(
      expect.objectContaining({ code: 'INVALID_OPTIONS', problems: expect.arrayContaining([expect.stringMatching(/routes/), expect.stringMatching(/servers/), expect.stringMatching(/subjectPrefix/), expect.stringMatching(/pubAckTimeoutMs/)]) }),
    );
    expect(() => createJetStreamDestination({ routes: [{ topic: 'a.*', subject: 'x.>' }], servers: server.url })).toThrowError(/subject must be a NATS subject/);
  });

  it('the relay publishes with Nats-Msg-Id = the id, headers carried, and removes rows only after the PubAck', async () => {
    const destination = createJetStreamDestination({ servers: server.url, routes: [{ topic: 'orders.#' }] });
    const relay = createRelay({ pool: p, destinations: [destination], pollIntervalMs: 50 });
    const ids = await publishCommitted(p, [
      { topic: 'orders.created', key: 'o-1', payload: { n: 1 }, headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': 'c-1', 'causation-id': 'x-1', 'reply-to': 'orders.replies', 'saga-id': 's-1' } },
      { topic: 'orders.shipped.eu', payload: { n: 2 } },
    ]);
    await relay.start();
    try {
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    } finally {
      await relay.stop();
    }
    const first = await jsm.streams.getMessage('ORDERS', { last_by_subj: 'orders.created' });
    expect(first!.header.get(NATS_HEADERS.messageId)).toBe(ids[0]);
    expect(first!.header.get('traceparent')).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    expect(first!.header.get('correlation-id')).toBe('c-1');
    expect(first!.header.get('causation-id')).toBe('x-1');
    expect(first!.header.get('reply-to')).toBe('orders.replies');
    expect(first!.header.get('saga-id')).toBe('s-1');
    expect(first!.header.get(NATS_HEADERS.key)).toBe('o-1');
    expect(first!.header.get(NATS_HEADERS.topic)).toBe('orders.created');
    expect(first!.json()).toEqual({ n: 1 });
    const second = await jsm.streams.getMessage('ORDERS', { last_by_subj: 'orders.shipped.eu' });
    expect(second!.header.get(NATS_HEADERS.messageId)).toBe(ids[1]);
  });

  it('a re-sent message is dropped by the stream (Nats-Msg-Id inside the duplicate window)', async () => {
    const destination = await started(createJetStreamDestination({ servers: server.url, routes: [{ topic: 'orders.#' }] }));
    try {
      const before = (await jsm.streams.info('ORDERS')).state.messages;
      const m = relayed({ id: '0190d6a4-7c3b-7000-8000-0000000000aa', topic: 'orders.dup' });
      await destination.deliver([m], { client: undefined as never });
      await destination.deliver([m], { client: undefined as never });
      expect((await jsm.streams.info('ORDERS')).state.messages).toBe(before + 1);
    } finally {
      await destination.stop?.();
    }
  });

  it('subject mapping: a prefix, or a fixed subject per route', async () => {
    await jsm.streams.add({ name: 'EVENTS', subjects: ['events.>', 'audit'] });
    const destination = await started(
      createJetStreamDestination({ servers: server.url, subjectPrefix: 'events.', routes: [{ topic: 'billing.*' }, { topic: 'audit.#', subject: 'audit' }] }),
    );
    try {
      expect(destination.matches('billing.paid')).toBe(true);
      expect(destination.matches('shipping.sent')).toBe(false);
      await destination.deliver([relayed({ id: '0190d6a4-7c3b-7000-8000-0000000000b1', topic: 'billing.paid' }), relayed({ id: '0190d6a4-7c3b-7000-8000-0000000000b2', topic: 'audit.login.failed' })], { client: undefined as never });
      expect((await jsm.streams.getMessage('EVENTS', { last_by_subj: 'events.billing.paid' }))!.header.get(NATS_HEADERS.messageId)).toBe('0190d6a4-7c3b-7000-8000-0000000000b1');
      expect((await jsm.streams.getMessage('EVENTS', { last_by_subj: 'audit' }))!.header.get(NATS_HEADERS.topic)).toBe('audit.login.failed');
    } finally {
      await destination.stop?.();
    }
  });

  it('bad input: no stream, too large for the server or the stream, a header NATS cannot carry -> typed errors, and the relay dead-letters each with its reason and keeps serving', async () => {
    const destination = await started(createJetStreamDestination({ servers: server.url, routes: [{ topic: '#' }] }));
    const ctx = { client: undefined as never };
    try {
      await expect(destination.deliver([relayed({ topic: 'nowhere.x' })], ctx)).rejects.toMatchObject({ code: 'BROKER_REJECTED', message: expect.stringMatching(/no JetStream stream takes subject nowhere\.x/) });
      await expect(destination.deliver([relayed({ payload: JSON.stringify({ s: 'x'.repeat(70_000) }) })], ctx)).rejects.toMatchObject({ code: 'PAYLOAD_TOO_LARGE' });
      await expect(destination.deliver([relayed({ topic: 'small.x', payload: JSON.stringify({ s: 'x'.repeat(2_000) }) })], ctx)).rejects.toMatchObject({ code: 'BROKER_REJECTED' });
      await expect(destination.deliver([relayed({ headers: JSON.stringify({ note: 'two\nlines' }) })], ctx)).rejects.toMatchObject({ code: 'BROKER_REJECTED', message: expect.stringMatching(/header "note"/) });
    } finally {
      await destination.stop?.();
    }

    const relay = createRelay({
      pool: p,
      destinations: [createJetStreamDestination({ servers: server.url, routes: [{ topic: '#' }] })],
      pollIntervalMs: 50,
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
    });
    const ids = await publishCommitted(p, [
      { topic: 'nowhere.x', payload: { n: 1 } },
      { topic: 'orders.big', payload: { s: 'x'.repeat(70_000) } },
      { topic: 'small.big', payload: { s: 'x'.repeat(2_000) } },
      { topic: 'orders.badheader', payload: { n: 4 }, headers: { note: 'two\nlines' } },
      { topic: 'orders.fine', payload: { n: 5 } },
    ]);
    await relay.start();
    try {
      await waitFor('outbox drained', async () => (await count('SELECT count(*) AS n FROM sagabox.outbox')) === 0);
    } finally {
      await relay.stop();
    }
    const { rows } = await p.query<{ id: string; reason: string; error: string }>('SELECT id, reason, error FROM sagabox.dead_letters WHERE id = ANY($1) ORDER BY topic', [ids]);
    expect(rows.map((r) => [r.id, r.reason])).toEqual(expect.arrayContaining([[ids[0], 'failed'], [ids[1], 'failed'], [ids[2], 'failed'], [ids[3], 'failed']]));
    expect(rows).toHaveLength(4);
    const byId = new Map(rows.map((r) => [r.id, r.error]));
    expect(byId.get(ids[0]!)).toMatch(/no JetStream stream takes subject nowhere\.x/);
    expect(byId.get(ids[1]!)).toMatch(/max_payload/);
    expect(byId.get(ids[2]!)).toMatch(/message size exceeds|maximum/i);
    expect(byId.get(ids[3]!)).toMatch(/cannot be carried as a NATS header/);
    expect((await jsm.streams.getMessage('ORDERS', { last_by_subj: 'orders.fine' }))!.header.get(NATS_HEADERS.messageId)).toBe(ids[4]);
  });
});
