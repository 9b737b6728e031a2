// The broker bridges' consumers make the same CONSUMER span as a worker: a message
// published in a trace, relayed to RabbitMQ or JetStream and handled by the bridge's
// consumer stays in that trace, its handler span a child of the publish span.
import { describe, expect, it } from 'vitest';
import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createRelay, Outcome, publish, type Message } from '@sagabox/core';
import { createRabbitMqConsumer, createRabbitMqDestination } from '@sagabox/rabbitmq';
import { createJetStreamConsumer, createJetStreamDestination } from '@sagabox/nats';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { RABBITMQ_URL, useRabbitMq } from '../support/rabbitmq.js';
import { useJetStream } from '../support/nats-server.js';
import { useInMemoryTracing } from '../support/in-memory-tracing.js';

const { spansOf } = useInMemoryTracing();
const app = trace.getTracer('test-app');

const { pool } = await useDatabase();
const p = pool(10);
const { name } = useRabbitMq();
const { server: nats, jsm } = await useJetStream();

/** Publishes `topic` inside an application span; returns that span's trace id. */
async function publishTraced(topic: string, payload: unknown): Promise<string> {
  const request = app.startSpan('POST /orders');
  await context.with(trace.setSpan(context.active(), request), () => publish(p, { topic, payload }));
  request.end();
  return request.spanContext().traceId;
}

/** The handler's spans of a trace: CONSUMER, named for the topic, children of its publish span. */
function expectHandlerSpans(traceId: string, topic: string, handled: number): ReadableSpan[] {
  const spans = spansOf(traceId);
  const published = spans.find((s) => s.name === `publish ${topic}`);
  expect(published?.kind).toBe(SpanKind.PRODUCER);
  const processed = spans.filter((s) => s.name === `process ${topic}`);
  expect(processed).toHaveLength(handled);
  for (const s of processed) {
    expect(s.kind).toBe(SpanKind.CONSUMER);
    expect(s.parentSpanContext?.spanId).toBe(published!.spanContext().spanId);
    expect(s.attributes['messaging.destination.name']).toBe(topic);
  }
  return processed;
}

describe('handler spans of the broker consumers', () => {
  it('RabbitMQ: a failed attempt ends its span with ERROR, the next one acks; both in the publisher\'s trace', async () => {
    const exchange = name('traced');
    const queue = name('traced-q');
    let calls = 0;
    const consumer = createRabbitMqConsumer({
      url: RABBITMQ_URL, pool: p, queue, bindings: [{ exchange, routingKey: 'traced.#' }],
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
      handler: (m: Message) => (++calls === 1 ? Outcome.retry({ reason: 'once more' }) : undefined),
    });
    await consumer.start();
    const relay = createRelay({ pool: p, destinations: [createRabbitMqDestination({ url: RABBITMQ_URL, routes: [{ topic: 'traced.#', exchange }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      const traceId = await publishTraced('traced.rabbit', { n: 1 });
      await waitFor('two handler spans', () => spansOf(traceId).filter((s) => s.name === 'process traced.rabbit').length === 2 || undefined, 20_000);
      const [first, second] = expectHandlerSpans(traceId, 'traced.rabbit', 2).sort((a, b) => Number(a.attributes['sagabox.message.attempt']) - Number(b.attributes['sagabox.message.attempt']));
      expect(first!.status.code).toBe(SpanStatusCode.ERROR);
      expect(first!.attributes['messaging.destination.subscription.name']).toBe(queue);
      expect(second!.status.code).not.toBe(SpanStatusCode.ERROR);
    } finally {
      await relay.stop();
      await consumer.stop();
    }
  });

  it('JetStream: a throwing handler\'s span records the exception; the retry acks in the same trace', async () => {
    await jsm.streams.add({ name: 'TRACED', subjects: ['traced.>'] });
    let calls = 0;
    const consumer = createJetStreamConsumer({
      servers: nats.url, stream: 'TRACED', durable: 'tracer', pool: p,
      retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 },
      handler: () => {
        if (++calls === 1) throw new Error('first attempt fails');
      },
    });
    await consumer.start();
    const relay = createRelay({ pool: p, destinations: [createJetStreamDestination({ servers: nats.url, routes: [{ topic: 'traced.#' }] })], pollIntervalMs: 50 });
    await relay.start();
    try {
      const traceId = await publishTraced('traced.nats', { n: 2 });
      await waitFor('two handler spans', () => spansOf(traceId).filter((s) => s.name === 'process traced.nats').length === 2 || undefined, 20_000);
      const spans = expectHandlerSpans(traceId, 'traced.nats', 2);
      const failed = spans.filter((s) => s.status.code === SpanStatusCode.ERROR);
      expect(failed).toHaveLength(1);
      expect(failed[0]!.events.some((e) => e.name === 'exception')).toBe(true);
      expect(failed[0]!.attributes['messaging.destination.subscription.name']).toBe('tracer');
    } finally {
      await relay.stop();
      await consumer.stop();
    }
  });
});
