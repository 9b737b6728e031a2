import { describe, expect, it } from 'vitest';
import type { JsMsg } from '@nats-io/jetstream';
import { headers as natsHeaders } from '@nats-io/transport-node';
import { NATS_HEADERS } from '@sagabox/nats';
import type { RelayedMessage } from '@sagabox/core';
import { deliveredHeaders, fromNatsHeaders, natsHeaderBlock } from '../../packages/nats/src/nats-headers.js';
import { deliveryInfo } from '../../packages/nats/src/jetstream-message.js';
import { useJetStream } from '../support/nats-server.js';

const { js, jsm } = await useJetStream();
await jsm.streams.add({ name: 'HDRS', subjects: ['hdrs.>'] });

/** Publishes messages with these headers and fetches them back as a consumer gets them. */
async function delivered(all: (readonly [string, string][] | undefined)[]): Promise<JsMsg[]> {
  for (const [i, entries] of all.entries()) {
    const h = entries ? natsHeaders() : undefined;
    for (const [name, value] of entries ?? []) h!.append(name, value);
    await js.publish(`hdrs.m${i}`, '{}', h ? { headers: h } : {});
  }
  const durable = `d${Date.now()}`;
  await jsm.consumers.add('HDRS', { durable_name: durable, ack_policy: 'explicit' as never });
  const consumer = await js.consumers.get('HDRS', durable);
  const out: JsMsg[] = [];
  for await (const m of await consumer.fetch({ max_messages: all.length, expires: 2_000 })) out.push(m);
  return out;
}

describe('deliveredHeaders', () => {
  it('reads the raw header block exactly as nats.js decodes it, without building nats.js headers', async () => {
    const cases: (readonly [string, string][] | undefined)[] = [
      [
        [NATS_HEADERS.messageId, '0190d6a4-7c3b-7000-8000-000000000001'],
        [NATS_HEADERS.topic, 'orders.created'],
        [NATS_HEADERS.key, 'k-1'],
        [NATS_HEADERS.createdAt, '2026-12-04T19:00:00.000Z'],
        [NATS_HEADERS.runAt, '2026-12-04T19:00:01.000Z'],
        [NATS_HEADERS.priority, '7'],
        [NATS_HEADERS.group, 'g'],
        ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
        ['correlation-id', 'c: with a colon and  spaces '],
      ],
      // Repeated names keep their first value; names differing in case are different headers.
      [
        ['note', 'first'],
        ['note', 'second'],
        ['Note', 'other'],
        [NATS_HEADERS.key, 'a'],
        [NATS_HEADERS.key, 'b'],
        ['sagabox-topic', 'not the envelope'],
        ['Nats-Expected-Stream', 'HDRS'],
        ['empty', ''],
      ],
      [[NATS_HEADERS.priority, 'high'], [NATS_HEADERS.createdAt, 'yesterday']],
      undefined,
    ];
    const msgs = await delivered(cases);
    expect(msgs).toHaveLength(cases.length);
    for (const m of msgs) {
      const fast = deliveredHeaders(m);
      // The raw path leaves nats.js's lazily decoded headers unbuilt.
      expect((m as unknown as { msg: { _headers?: unknown } }).msg._headers).toBeUndefined();
      expect(fast).toEqual(fromNatsHeaders(m.headers));
      m.ack();
    }
    const [first, second, third, none] = msgs.map((m) => deliveredHeaders(m));
    expect(first).toMatchObject({ key: 'k-1', topic: 'orders.created', priority: 7, group: 'g', headers: { traceparent: expect.any(String), 'correlation-id': 'c: with a colon and  spaces' } });
    expect(first!.runAt?.toISOString()).toBe('2026-12-04T19:00:01.000Z');
    expect(second).toMatchObject({ key: 'a', headers: { note: 'first', Note: 'other', empty: '' } });
    expect(second!.headers).not.toHaveProperty('sagabox-topic');
    expect(second!.headers).not.toHaveProperty('Nats-Expected-Stream');
    expect(third).toMatchObject({ priority: 0, createdAt: undefined });
    expect(none).toMatchObject({ headers: {}, msgId: undefined, key: null });
  });

  it('falls back to the message headers when the raw block is not there', () => {
    const h = natsHeaders();
    h.append(NATS_HEADERS.key, 'k');
    h.append('x-own', 'v');
    const m = { headers: h, msg: {} } as unknown as JsMsg;
    expect(deliveredHeaders(m)).toEqual(fromNatsHeaders(h));
    expect(deliveredHeaders(m)).toMatchObject({ key: 'k', headers: { 'x-own': 'v' } });
  });
});

describe('deliveryInfo', () => {
  it('reads what nats.js reads from the reply subject of delivered messages, redeliveries too', async () => {
    const msgs = await delivered([undefined, undefined, undefined]);
    expect(msgs).toHaveLength(3);
    for (const m of msgs) {
      const { stream, streamSequence, deliveryCount } = m.info;
      expect(deliveryInfo(m)).toEqual({ stream, streamSequence, deliveryCount });
      expect(deliveryCount).toBe(1);
      m.nak();
    }
    const durable = (msgs[0]!.info as { consumer: string }).consumer;
    const again: JsMsg[] = [];
    for await (const m of await (await js.consumers.get('HDRS', durable)).fetch({ max_messages: 3, expires: 2_000 })) again.push(m);
    expect(again.length).toBeGreaterThan(0);
    for (const m of again) {
      expect(m.info.deliveryCount).toBe(2);
      expect(deliveryInfo(m)).toEqual({ stream: 'HDRS', streamSequence: m.info.streamSequence, deliveryCount: 2 });
      m.ack();
    }
  });
});

describe('natsHeaderBlock', () => {
  const message = (over: Partial<RelayedMessage>): RelayedMessage => ({
    seq: '1',
    id: '0190d6a4-7c3b-7000-8000-000000000001',
    topic: 'orders.created',
    key: null,
    payload: '{}',
    headers: '{}',
    runAt: null,
    expiresAt: null,
    attempts: 0,
    createdAt: new Date('2026-12-05T10:00:00.000Z'),
    priority: 0,
    group: null,
    ...over,
  });

  /** The block nats.js encodes for the same headers, appended in the same order. */
  const byNatsJs = (entries: [string, string][]): string => {
    const h = natsHeaders();
    for (const [name, value] of entries) h.append(name, value);
    // encode() is what publish calls; nats.js 3 keeps it off the MsgHdrs type.
    return new TextDecoder().decode((h as unknown as { encode(): Uint8Array }).encode());
  };

  it('encodes the own headers, then the envelope, byte for byte as nats.js encodes them', () => {
    const full = message({
      key: ' k-1 ',
      headers: JSON.stringify({ traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'correlation-id': ' c: spaced ', Note: '' }),
      runAt: new Date('2026-12-05T10:00:01.000Z'),
      expiresAt: new Date('2026-12-05T11:00:00.000Z'),
      priority: -3,
      group: 'g-1',
    });
    expect(new TextDecoder().decode(natsHeaderBlock(full))).toBe(
      byNatsJs([
        ['traceparent', '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'],
        ['correlation-id', ' c: spaced '],
        ['Note', ''],
        [NATS_HEADERS.messageId, full.id],
        [NATS_HEADERS.topic, 'orders.created'],
        [NATS_HEADERS.key, ' k-1 '],
        [NATS_HEADERS.createdAt, '2026-12-05T10:00:00.000Z'],
        [NATS_HEADERS.runAt, '2026-12-05T10:00:01.000Z'],
        [NATS_HEADERS.expiresAt, '2026-12-05T11:00:00.000Z'],
        [NATS_HEADERS.priority, '-3'],
        [NATS_HEADERS.group, 'g-1'],
      ]),
    );
    const bare = message({});
    expect(new TextDecoder().decode(natsHeaderBlock(bare))).toBe(
      byNatsJs([[NATS_HEADERS.messageId, bare.id], [NATS_HEADERS.topic, 'orders.created'], [NATS_HEADERS.createdAt, '2026-12-05T10:00:00.000Z']]),
    );
  });

  it('refuses what a NATS header cannot carry, naming the message', () => {
    for (const headers of [{ 'a b': 'v' }, { 'a:b': 'v' }, { note: 'two\nlines' }, { n: 1 }, { 'Sagabox-Topic': 'x' }, { 'nats-msg-id': 'x' }]) {
      expect(() => natsHeaderBlock(message({ headers: JSON.stringify(headers) }))).toThrow(expect.objectContaining({ code: 'BROKER_REJECTED', message: expect.stringMatching(/cannot be carried as a NATS header/) }));
    }
    expect(() => natsHeaderBlock(message({ headers: '{' }))).toThrow(expect.objectContaining({ code: 'BROKER_REJECTED' }));
    expect(() => natsHeaderBlock(message({ key: 'a\rb' }))).toThrow(expect.objectContaining({ code: 'BROKER_REJECTED', message: expect.stringMatching(/key of message/) }));
    expect(() => natsHeaderBlock(message({ group: 'a\nb' }))).toThrow(expect.objectContaining({ code: 'BROKER_REJECTED', message: expect.stringMatching(/group of message/) }));
  });
});
