// What sagabox's spans cost when no OpenTelemetry SDK is registered (the API is a
// no-op): the span code alone in a tight loop, and publish() against PostgreSQL with
// and without it (this checkout's build vs another checkout's, given as BASE_CORE,
// alternating rounds in one process). Usage:
//   npm run build && BASE_CORE=/path/to/other/packages/core/dist/index.js \
//     DATABASE_URL=postgres://... node bench/tracing/noop-cost.mjs
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { startPublishSpans } from '../../packages/core/dist/publish/publish-spans.js';
import { startHandlerSpan } from '../../packages/core/dist/worker/handler-span.js';
import { encodeMessage } from '../../packages/core/dist/publish/envelope.js';
import * as core from '../../packages/core/dist/index.js';
import { migrateUp } from '../../packages/core/dist/migrate.js';

const loop = (n, fn) => {
  for (let i = 0; i < n / 10; i++) fn(); // warm-up
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) * 1e6) / n;
};
const N = 1_000_000;
const message = { topic: 'orders.created', payload: { n: 1 }, headers: { 'correlation-id': 'c-1' } };
const encoded = [encodeMessage(message, 1 << 20)];
const row = { id: encoded[0].id, topic: 'orders.created', headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' }, attempts: 1 };
const result = { kind: 'returned', value: undefined };

console.log(`publish spans, no active span:        ${loop(N, () => startPublishSpans([message], encoded).end()).toFixed(0)} ns/message`);
console.log(`publish spans, message with its own traceparent: ${loop(N, () => startPublishSpans([{ ...message, headers: row.headers }], encoded).end()).toFixed(0)} ns/message`);
console.log(`handler span, message with traceparent: ${loop(N, () => { const s = startHandlerSpan(row, 'q', 'c'); s.run(() => 1); s.end(result, undefined); }).toFixed(0)} ns/call`);

const url = process.env.DATABASE_URL;
if (url && process.env.BASE_CORE) {
  const base = await import(process.env.BASE_CORE);
  const pool = new pg.Pool({ connectionString: url, max: 1 });
  await migrateUp({ pool });
  const rounds = Number(process.env.ROUNDS ?? 6);
  const per = Number(process.env.PER_ROUND ?? 3000);
  const times = { this: [], base: [] };
  const client = await pool.connect();
  for (let r = 0; r < rounds; r++) {
    for (const [name, lib] of r % 2 === 0 ? [['this', core], ['base', base]] : [['base', base], ['this', core]]) {
      await client.query('TRUNCATE sagabox.outbox');
      const t = performance.now();
      for (let i = 0; i < per; i++) await lib.publish(client, message, { notify: false });
      times[name].push(((performance.now() - t) * 1000) / per);
    }
  }
  client.release();
  await pool.query('TRUNCATE sagabox.outbox');
  await pool.end();
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`publish() one message, autocommit, ${rounds} alternating rounds of ${per}: this ${median(times.this).toFixed(1)} us, base ${median(times.base).toFixed(1)} us (medians); rounds this=[${times.this.map((x) => x.toFixed(1))}] base=[${times.base.map((x) => x.toFixed(1))}]`);
}
