// The spans sagabox makes on its own (publish, relay delivery, handler, saga
// transitions), recorded by a real OpenTelemetry SDK with an in-memory exporter.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createRelay, createWorker, Outcome, publish, type Destination, type Message } from '@sagabox/core';
import { createOrchestrator, defineSaga, getSaga, halfMessageParticipant, startSaga, StepResult } from '@sagabox/saga';
import { makeOrderSaga, type OrderInput } from '../fixtures/saga-order.mjs';
import { createSagaWorld, type SagaWorld } from '../fixtures/saga-world.js';
import { useInMemoryTracing } from '../support/in-memory-tracing.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { exporter, spansOf } = useInMemoryTracing();
const app = trace.getTracer('test-app');

const { pool } = await useDatabase();
const p = pool(10);

const parentId = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;
const named = (spans: ReadableSpan[], name: string): ReadableSpan[] => spans.filter((s) => s.name === name);

describe('spans of one message: publish, relay, handler', () => {
  it('the handler span is a CONSUMER child of the PRODUCER publish span, itself a child of the active span; the relay hop is a child too', async () => {
    const handled = new Map<string, { traceId: string; parent: string | undefined; traceparent: string | undefined }>();
    const relay = createRelay({ pool: p, routes: [{ topic: 'plain.*', queue: 'plain' }], pollIntervalMs: 50 });
    const worker = createWorker({
      pool: p,
      queue: 'plain',
      pollIntervalMs: 50,
      handler: async (m: Message) => {
        // The handler's own spans join the trace without any code of its own.
        app.startActiveSpan('bill', (span) => {
          handled.set(m.id, { traceId: span.spanContext().traceId, parent: parentId(span as unknown as ReadableSpan), traceparent: m.headers.traceparent });
          span.end();
        });
      },
    });
    await relay.start();
    await worker.start();
    try {
      const request = app.startSpan('POST /orders');
      const id = randomUUID();
      await context.with(trace.setSpan(context.active(), request), () =>
        publish(p, { id, topic: 'plain.created', payload: { n: 1 }, headers: { 'correlation-id': 'order-1' } }),
      );
      request.end();
      const traceId = request.spanContext().traceId;
      await waitFor('the handler span', () => named(spansOf(traceId), 'process plain.created').length === 1 || undefined, 15_000);

      const spans = spansOf(traceId);
      const [pub] = named(spans, 'publish plain.created');
      const [deliver] = named(spans, 'deliver plain.created');
      const [proc] = named(spans, 'process plain.created');
      const [bill] = named(spans, 'bill');
      expect(pub!.kind).toBe(SpanKind.PRODUCER);
      expect(parentId(pub!)).toBe(request.spanContext().spanId);
      expect(pub!.attributes).toMatchObject({
        'messaging.system': 'sagabox',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'publish',
        'messaging.destination.name': 'plain.created',
        'messaging.message.id': id,
        'messaging.message.conversation_id': 'order-1',
      });
      expect(deliver!.kind).toBe(SpanKind.PRODUCER);
      expect(parentId(deliver!)).toBe(pub!.spanContext().spanId);
      expect(deliver!.attributes).toMatchObject({ 'messaging.operation.name': 'deliver', 'messaging.message.id': id, 'sagabox.relay.destination': expect.any(String) });
      expect(proc!.kind).toBe(SpanKind.CONSUMER);
      expect(parentId(proc!)).toBe(pub!.spanContext().spanId);
      expect(proc!.attributes).toMatchObject({
        'messaging.system': 'sagabox',
        'messaging.operation.type': 'process',
        'messaging.destination.name': 'plain.created',
        'messaging.destination.subscription.name': 'plain',
        'messaging.message.id': id,
        'messaging.message.conversation_id': 'order-1',
        'sagabox.message.attempt': 1,
      });
      expect(proc!.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(handled.get(id)).toMatchObject({ traceId, parent: proc!.spanContext().spanId });
      expect(parentId(bill!)).toBe(proc!.spanContext().spanId);

      // The message carries the publish span's context: what a handler elsewhere continues.
      expect(handled.get(id)!.traceparent).toBe(`00-${traceId}-${pub!.spanContext().spanId}-01`);

      // Without an active span, a message starts a trace of its own, and its handler joins it.
      const lone = randomUUID();
      await publish(p, { id: lone, topic: 'plain.created', payload: { n: 2 } });
      const loneSpans = await waitFor('the lone handler span', () => {
        const all = exporter.getFinishedSpans().filter((s) => s.attributes['messaging.message.id'] === lone);
        return all.some((s) => s.kind === SpanKind.CONSUMER) ? all : undefined;
      }, 15_000);
      const lonePub = loneSpans.find((s) => s.kind === SpanKind.PRODUCER && s.name.startsWith('publish'))!;
      expect(parentId(lonePub)).toBeUndefined();
      expect(new Set(loneSpans.map((s) => s.spanContext().traceId))).toEqual(new Set([lonePub.spanContext().traceId]));
    } finally {
      await worker.stop();
      await relay.stop();
    }
  });

  it('a handler that throws, a dead-letter outcome and a failing delivery end their spans with status ERROR; a throw records the exception', async () => {
    let failDelivery = true;
    const flaky: Destination = {
      name: 'flaky',
      matches: (topic) => topic === 'flaky.sent',
      async deliver() {
        if (failDelivery) {
          failDelivery = false;
          throw new Error('endpoint said 503');
        }
      },
    };
    const relay = createRelay({ pool: p, routes: [{ topic: 'err.*', queue: 'errq' }], destinations: [flaky], pollIntervalMs: 50, retry: { baseDelayMs: 10, maxDelayMs: 20 } });
    const worker = createWorker({
      pool: p,
      queue: 'errq',
      pollIntervalMs: 50,
      batchSize: 1,
      retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 },
      handler: async (m: Message<{ kind: string }>) => {
        if (m.payload.kind === 'throw') throw new TypeError('card number missing');
        if (m.payload.kind === 'dead') return Outcome.deadLetter('not our customer');
      },
    });
    await relay.start();
    await worker.start();
    try {
      const thrown = randomUUID();
      const dead = randomUUID();
      const sent = randomUUID();
      await publish(p, [
        { id: thrown, topic: 'err.a', payload: { kind: 'throw' } },
        { id: dead, topic: 'err.b', payload: { kind: 'dead' } },
        { id: sent, topic: 'flaky.sent', payload: {} },
      ]);
      const of = (id: string, kind: SpanKind) => exporter.getFinishedSpans().filter((s) => s.attributes['messaging.message.id'] === id && s.kind === kind);
      // Two attempts of the throwing handler, then the dead letter.
      const throws = await waitFor('two failed handler spans', () => (of(thrown, SpanKind.CONSUMER).length >= 2 ? of(thrown, SpanKind.CONSUMER) : undefined), 15_000);
      for (const s of throws) {
        expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card number missing' });
        expect(s.attributes['error.type']).toBe('TypeError');
        const event = s.events.find((e) => e.name === 'exception');
        expect(event?.attributes).toMatchObject({ 'exception.type': 'TypeError', 'exception.message': 'card number missing' });
      }
      expect(throws.map((s) => s.attributes['sagabox.message.attempt']).sort()).toEqual([1, 2]);

      const [deadSpan] = await waitFor('the dead-letter handler span', () => (of(dead, SpanKind.CONSUMER).length > 0 ? of(dead, SpanKind.CONSUMER) : undefined), 15_000);
      expect(deadSpan!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'not our customer' });
      expect(deadSpan!.attributes['error.type']).toBe('dead-letter');
      expect(deadSpan!.events.some((e) => e.name === 'exception')).toBe(false);

      const deliveries = await waitFor('a failed then a good delivery', () => {
        const d = of(sent, SpanKind.PRODUCER).filter((s) => s.name === 'deliver flaky.sent');
        return d.length >= 2 ? d : undefined;
      }, 15_000);
      const [failed, ok] = deliveries.sort((a, b) => Number(a.attributes['sagabox.delivery.attempt']) - Number(b.attributes['sagabox.delivery.attempt']));
      expect(failed!.status.code).toBe(SpanStatusCode.ERROR);
      expect(failed!.events.find((e) => e.name === 'exception')?.attributes?.['exception.message']).toBe('endpoint said 503');
      expect(ok!.status.code).not.toBe(SpanStatusCode.ERROR);
      expect(failed!.attributes['sagabox.relay.destination']).toBe('flaky');
    } finally {
      await worker.stop();
      await relay.stop();
    }
  });
});

describe('one order through the saga forms one trace', () => {
  const orderSaga = makeOrderSaga();
  let world: SagaWorld;
  beforeAll(async () => {
    world = await createSagaWorld({ definitions: [orderSaga] });
  });
  afterAll(() => world?.stop());

  /** Starts an order saga inside a `checkout` span; returns its id and the trace id. */
  const checkout = async (input: OrderInput): Promise<{ id: string; traceId: string; root: ReadableSpan }> => {
    return app.startActiveSpan('checkout', async (span) => {
      const client = await world.pool.connect();
      try {
        await client.query('BEGIN');
        const { id } = await startSaga(client, orderSaga, input);
        await client.query('COMMIT');
        return { id, traceId: span.spanContext().traceId, root: span as unknown as ReadableSpan };
      } finally {
        client.release();
        span.end();
      }
    });
  };

  /** Every span of the trace has its parent in the trace, but the root. */
  const expectConnected = (spans: ReadableSpan[], root: ReadableSpan): void => {
    const ids = new Set(spans.map((s) => s.spanContext().spanId));
    const orphans = spans.filter((s) => s !== root && s.spanContext().spanId !== root.spanContext().spanId && !ids.has(parentId(s) ?? ''));
    expect(orphans.map((s) => s.name)).toEqual([]);
  };

  /** The chain of span names from `span` up to the root. */
  const ancestry = (spans: ReadableSpan[], span: ReadableSpan): string[] => {
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
    const names: string[] = [];
    for (let s: ReadableSpan | undefined = span; s; s = byId.get(parentId(s) ?? '')) names.push(s.name);
    return names;
  };

  it('start, commands, participants, replies and transitions share the checkout trace, each span parented in it', async () => {
    const { id, traceId, root } = await checkout({ orderId: `order-${randomUUID()}`, amount: 42 });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('completed');
    // The last transition (the ship reply, the local confirm, completed) ends its span before its commit is seen.
    const spans = await waitFor('the final transition span', () => {
      const all = spansOf(traceId);
      return all.some((s) => s.name === 'saga order reply' && s.attributes['sagabox.saga.status'] === 'completed') ? all : undefined;
    }, 15_000);
    expect(spans.every((s) => s.spanContext().traceId === traceId)).toBe(true);
    const finished = exporter.getFinishedSpans();
    // Nothing of this saga went to another trace.
    const elsewhere = finished.filter((s) => s.spanContext().traceId !== traceId && (s.attributes['sagabox.saga.id'] === id || s.attributes['messaging.message.conversation_id'] === id));
    expect(elsewhere.map((s) => s.name)).toEqual([]);
    expectConnected([...spans, root], root);

    const names = spans.map((s) => s.name);
    for (const topic of ['inventory.reserve', 'payment.charge', 'shipping.ship']) {
      expect(names).toContain(`publish ${topic}`);
      expect(names).toContain(`deliver ${topic}`);
      expect(names).toContain(`process ${topic}`);
    }
    expect(named(spans, 'saga order start')).toHaveLength(1);
    const transitions = named(spans, 'saga order reply');
    expect(transitions).toHaveLength(3);
    expect(transitions.map((s) => s.attributes['sagabox.saga.id'])).toEqual([id, id, id]);
    expect(transitions.map((s) => s.attributes['sagabox.saga.step.before']).sort()).toEqual(['charge', 'reserve', 'ship']);

    // The causal chain: the ship command's handler descends, hop by hop, from checkout.
    const ship = named(spans, 'process shipping.ship')[0]!;
    expect(ship.kind).toBe(SpanKind.CONSUMER);
    expect(ship.attributes['messaging.message.conversation_id']).toBe(id);
    expect(ancestry([...spans, root], ship)).toEqual([
      'process shipping.ship',
      'publish shipping.ship',
      'saga order reply', // charge's reply arrives, the orchestrator sends ship
      expect.stringMatching(/^process /),
      expect.stringMatching(/^publish /), // payment's reply
      'process payment.charge',
      'publish payment.charge',
      'saga order reply',
      expect.stringMatching(/^process /),
      expect.stringMatching(/^publish /), // inventory's reply
      'process inventory.reserve',
      'publish inventory.reserve',
      'saga order start',
      'checkout',
    ]);
  });

  it('a failing order compensates inside the same trace', async () => {
    const { id, traceId, root } = await checkout({ orderId: `order-${randomUUID()}`, amount: 1, failAt: 'shipping' });
    const saga = await world.waitForSaga(id, ['completed', 'compensated', 'failed']);
    expect(saga.status).toBe('compensated');
    const spans = await waitFor('the final transition span', () => {
      const all = spansOf(traceId);
      return all.some((s) => s.attributes['sagabox.saga.status'] === 'compensated') ? all : undefined;
    }, 15_000);
    expectConnected([...spans, root], root);
    const names = spans.map((s) => s.name);
    expect(names).toContain('process payment.refund');
    expect(names).toContain('process inventory.release');
    const elsewhere = exporter.getFinishedSpans().filter((s) => s.spanContext().traceId !== traceId && s.attributes['sagabox.saga.id'] === id);
    expect(elsewhere).toEqual([]);
  });
});

describe('a saga whose participant replies with a half message', () => {
  it('stays one trace: the half-message reply carries the participant span\'s context back to the orchestrator', async () => {
    const paySaga = defineSaga({
      name: 'pay',
      version: 1,
      initialState: (input: { amount: number }) => ({ ...input, charged: false }),
      steps: (step) => [
        step.remote<{ type: string }>({
          name: 'charge',
          command: (s) => ({ topic: 'card.charge', payload: s }),
          onReply: (reply, s) => (reply.type === 'charged' ? StepResult.ok({ ...s, charged: true }) : StepResult.fail('declined')),
        }),
      ],
    });
    const orchestrator = createOrchestrator({ pool: p, definitions: [paySaga], pollIntervalMs: 50 });
    const relay = createRelay({ pool: p, pollIntervalMs: 50, routes: [...orchestrator.routes, { topic: 'card.*', queue: 'card' }] });
    const worker = createWorker({
      pool: p,
      queue: 'card',
      pollIntervalMs: 50,
      handler: halfMessageParticipant<{ amount: number }>({
        topic: 'card.charge',
        pool: p,
        reply: () => ({ type: 'charged' }),
        act: async () => ({ ok: true }),
      }),
    });
    await relay.start();
    await worker.start();
    await orchestrator.start();
    try {
      const root = app.startSpan('pay');
      const { id } = await context.with(trace.setSpan(context.active(), root), () => startSaga(p, paySaga, { amount: 5 }));
      root.end();
      const traceId = root.spanContext().traceId;
      await waitFor('the saga completed', async () => (await getSaga(p, id))?.status === 'completed' || undefined, 15_000);
      const spans = await waitFor('the completing transition span', () => {
        const all = spansOf(traceId);
        return all.some((s) => s.name === 'saga pay reply' && s.attributes['sagabox.saga.status'] === 'completed') ? all : undefined;
      }, 15_000);
      const ids = new Set(spans.map((s) => s.spanContext().spanId));
      expect(spans.filter((s) => s.name !== 'pay' && !ids.has(parentId(s) ?? '')).map((s) => s.name)).toEqual([]);
      const byId = new Map(spans.map((s) => [s.spanContext().spanId, s]));
      const reply = spans.find((s) => s.name === 'saga pay reply')!;
      const chain: string[] = [];
      for (let s: ReadableSpan | undefined = reply; s; s = byId.get(parentId(s) ?? '')) chain.push(s.name);
      // The half message is written by prepare/commit, not publish: its reply's process
      // span hangs directly under the participant's process span.
      expect(chain).toEqual(['saga pay reply', expect.stringMatching(/^process /), 'process card.charge', 'publish card.charge', 'saga pay start', 'pay']);
      expect(exporter.getFinishedSpans().filter((s) => s.spanContext().traceId !== traceId && s.attributes['sagabox.saga.id'] === id)).toEqual([]);
    } finally {
      await orchestrator.stop();
      await worker.stop();
      await relay.stop();
    }
  });
});
