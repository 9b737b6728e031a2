// Without an OpenTelemetry SDK the span code steps aside (a given traceparent passes
// through untouched); an SDK registered while relays and workers run is used at once.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SpanKind } from '@opentelemetry/api';
import { createRelay, createWorker, publish, type Message } from '@sagabox/core';
import { installInMemoryTracing, type InMemoryTracing } from '../support/in-memory-tracing.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { pool } = await useDatabase();
const p = pool(6);

describe('spans and the SDK registration', () => {
  it('without an SDK a message keeps its traceparent and nothing is recorded; an SDK registered later gets the next messages\' spans', async () => {
    const seen = new Map<string, string | undefined>();
    const relay = createRelay({ pool: p, routes: [{ topic: 'late.*', queue: 'late' }], pollIntervalMs: 50 });
    const worker = createWorker({ pool: p, queue: 'late', pollIntervalMs: 50, handler: async (m: Message) => void seen.set(m.id, m.headers.traceparent) });
    await relay.start();
    await worker.start();
    let tracing: InMemoryTracing | undefined;
    try {
      const given = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
      const before = randomUUID();
      await publish(p, { id: before, topic: 'late.a', payload: {}, headers: { traceparent: given } });
      await waitFor('the first message handled', () => seen.has(before) || undefined, 15_000);
      expect(seen.get(before)).toBe(given);

      tracing = installInMemoryTracing();
      const { exporter } = tracing;
      const after = randomUUID();
      await publish(p, { id: after, topic: 'late.a', payload: {}, headers: { traceparent: given } });
      const spans = await waitFor('the second message\'s spans', () => {
        const all = exporter.getFinishedSpans().filter((s) => s.attributes['messaging.message.id'] === after);
        return all.some((s) => s.kind === SpanKind.CONSUMER) ? all : undefined;
      }, 15_000);
      const pub = spans.find((s) => s.name === 'publish late.a')!;
      // The given traceparent is the publish span's parent; the handler gets the publish span's.
      expect(pub.spanContext().traceId).toBe('0af7651916cd43dd8448eb211c80319c');
      expect(pub.parentSpanContext?.spanId).toBe('b7ad6b7169203331');
      expect(seen.get(after)).toBe(`00-0af7651916cd43dd8448eb211c80319c-${pub.spanContext().spanId}-01`);
      expect(exporter.getFinishedSpans().filter((s) => s.attributes['messaging.message.id'] === before)).toEqual([]);
    } finally {
      await worker.stop();
      await relay.stop();
      await tracing?.uninstall();
    }
  });
});
