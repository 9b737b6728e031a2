// Property tests of the dashboard's HTTP input: whatever a client sends in a query, a
// path segment or a JSON body, the answer is a 2xx or a 4xx with an error text, never a
// 500, and a preview (dryRun) or a refused request changes nothing.
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { serveDashboard } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { pool, count } = await useDatabase();
const p = pool(6);
await seedDashboard(p);
const d = await serveDashboard({ pool: p, port: 0, tokens: [{ name: 'oncall', token: 'oncall-token-1', permissions: ['actions', 'payloads'] }] });
afterAll(() => d.stop());
const auth = { authorization: 'Bearer oncall-token-1' };
const snapshot = async () => [
  await count('SELECT count(*) AS n FROM sagabox.queue_messages'),
  await count('SELECT count(*) AS n FROM sagabox.outbox'),
  await count('SELECT count(*) AS n FROM sagabox.dead_letters'),
  await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE run_at <= now()'),
];

// Values that look like what a filter takes, and values that do not.
const text = fc.oneof(
  fc.constantFrom('', 'orders', 'billing', 'ready', 'in_flight', 'retrying', 'scheduled', 'prepared', 'shop.order', 'k1', '0', '1', '-1', '1e3', '99999999999999999999', '00000000-0000-0000-0000-000000000000', "'; drop table x; --", '\u0000', '%', '../', 'ü'),
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
);
const filterValue = fc.oneof(text, fc.integer(), fc.boolean(), fc.constant(null), fc.array(text, { maxLength: 3 }), fc.dictionary(text, text, { maxKeys: 2 }));
const filterKey = fc.constantFrom('queue', 'state', 'topic', 'key', 'group', 'id', 'errorContains', 'limit', 'reason', 'deadIds', 'after', 'x');

function expectAnswer(status: number, body: unknown): void {
  expect([200, 400, 404, 409, 413]).toContain(status);
  if (status !== 200) expect(body).toEqual({ error: expect.any(String), ...(typeof body === 'object' && body && 'code' in body ? { code: expect.any(String) } : {}) });
}

describe('dashboard API input', () => {
  it('answers any message listing query with a page or a 400/404, never a 500', async () => {
    await fc.assert(
      fc.asyncProperty(fc.dictionary(fc.constantFrom('queue', 'state', 'topic', 'key', 'group', 'id', 'error', 'after', 'limit'), text, { maxKeys: 5 }), async (query) => {
        const res = await fetch(`${d.url}api/messages?${new URLSearchParams(query)}`, { headers: auth });
        const body = (await res.json()) as { next?: unknown };
        expectAnswer(res.status, body);
        if (res.status === 200) expect(body).toEqual({ messages: expect.any(Array), next: body.next === null ? null : expect.any(String) });
      }),
      { numRuns: 150 },
    );
  });

  it('answers any id in a path with the thing or a 400/404', async () => {
    await fc.assert(
      fc.asyncProperty(text, fc.constantFrom('messages', 'sagas'), async (id, what) => {
        const res = await fetch(`${d.url}api/${what}/${encodeURIComponent(id)}`, { headers: auth });
        expectAnswer(res.status, await res.json());
      }),
      { numRuns: 100 },
    );
  });

  it('previews any bulk action filter without changing anything, and answers it with a count or a 400/404', async () => {
    const before = await snapshot();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('messages/retry', 'messages/cancel', 'messages/delete', 'dead-letters/replay', 'dead-letters/purge'),
        fc.oneof(fc.dictionary(filterKey, filterValue, { maxKeys: 4 }), filterValue),
        async (route, filter) => {
          const res = await fetch(`${d.url}api/${route}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ filter, dryRun: true, reason: 'property test' }) });
          const body = await res.json();
          expectAnswer(res.status, body);
          if (res.status === 200) expect(body).toMatchObject({ dryRun: true, affected: expect.any(Number) });
        },
      ),
      { numRuns: 200 },
    );
    expect(await snapshot()).toEqual(before);
  });

  it('refuses bodies that are not a JSON object with a 400, changing nothing', async () => {
    const before = await snapshot();
    const isObject = (raw: string): boolean => {
      try {
        const v: unknown = JSON.parse(raw);
        return typeof v === 'object' && v !== null && !Array.isArray(v);
      } catch {
        return false;
      }
    };
    const notAnObject = fc
      .oneof(fc.string({ maxLength: 30 }), fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v)))
      .filter((raw) => raw !== undefined && raw.trim() !== '' && !isObject(raw));
    await fc.assert(
      fc.asyncProperty(notAnObject, fc.constantFrom('messages/delete', 'dead-letters/purge', 'queues/orders/pause'), async (raw, route) => {
        const res = await fetch(`${d.url}api/${route}`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: raw });
        expect({ raw, status: res.status, body: await res.json() }).toEqual({ raw, status: 400, body: { error: expect.any(String) } });
      }),
      { numRuns: 150, examples: [['[]', 'messages/delete'], ['null', 'dead-letters/purge'], ['"x"', 'messages/delete'], ['{"filter":', 'queues/orders/pause'], ['1', 'messages/delete']] },
    );
    expect(await snapshot()).toEqual(before);
    expect(await count('SELECT count(*) AS n FROM sagabox.queues WHERE paused_at IS NOT NULL')).toBe(0);
  });
});
