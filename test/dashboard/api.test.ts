import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { isSagaboxError } from '@sagabox/core';
import { listDeadLetters, listHalfMessages, outboxStats, queueStats } from '@sagabox/core/admin';
import { serveDashboard, type DashboardServer } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { pool, count } = await useDatabase();
const p = pool(6);
const seed = await seedDashboard(p);
const servers: DashboardServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.stop())));

async function serve(options: Parameters<typeof serveDashboard>[0]): Promise<DashboardServer> {
  const s = await serveDashboard(options);
  servers.push(s);
  return s;
}
const json = async (res: Response): Promise<any> => res.json();

describe('dashboard API', () => {
  it('serves the overview from the admin functions: numbers match the database', async () => {
    const d = await serve({ pool: p, port: 0 });
    const page = await fetch(d.url);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(await page.text()).toMatch(/<title>sagabox dashboard<\/title>/);

    const o = await json(await fetch(`${d.url}api/overview`));
    const queues = await queueStats(p);
    expect(o.queues.map(({ backlogPerSecond: _r, ...q }: { backlogPerSecond: unknown }) => q)).toEqual(JSON.parse(JSON.stringify(queues)).map((q: { oldestAgeMs: number | null }) => ({ ...q, oldestAgeMs: q.oldestAgeMs === null ? null : expect.any(Number) })));
    expect(o.queues.find((q: { queue: string }) => q.queue === 'orders')).toMatchObject({ ready: 3, delayed: 1, dead: 0 });
    expect(o.queues.find((q: { queue: string }) => q.queue === 'billing')).toMatchObject({ ready: 0, dead: 2 });
    expect(o.outbox).toEqual({ ...(await outboxStats(p)), lagMs: expect.any(Number) });
    expect(o.outbox).toMatchObject({ ready: 2, prepared: 2 });
    expect(o.deadLetters.map((x: { deadId: string }) => x.deadId)).toEqual((await listDeadLetters(p)).map((x) => x.deadId));
    expect(o.deadLetters[0]).toMatchObject({ queue: 'billing', reason: 'non_retryable', error: expect.stringMatching(/^card declined/) });
    expect(o.halfMessages.map((h: { id: string }) => h.id).sort()).toEqual((await listHalfMessages(p)).map((h) => h.id).sort());
    expect(o.sagaCounts).toEqual([{ type: 'order', status: 'compensated', count: 1 }, { type: 'order', status: 'running', count: 2 }]);
    expect(o.sagas).toHaveLength(3);
    expect(o.storage).toMatchObject({ vacuumBlocked: false });
    expect(o.storage.tables.map((t: { table: string }) => t.table)).toEqual(expect.arrayContaining(['queue_messages', 'inbox', 'outbox']));
    // A second read a little later has a backlog rate.
    await new Promise((r) => setTimeout(r, 600));
    const again = await json(await fetch(`${d.url}api/overview`));
    expect(again.queues.find((q: { queue: string }) => q.queue === 'orders').backlogPerSecond).toBe(0);
  });

  it('lists sagas by status and shows one with its history; rejects bad input without touching SQL', async () => {
    const d = await serve({ pool: p, port: 0 });
    const running = await json(await fetch(`${d.url}api/sagas?status=running`));
    expect(running.map((s: { id: string }) => s.id).sort()).toEqual([...seed.runningSagaIds].sort());
    const one = await json(await fetch(`${d.url}api/sagas/${seed.compensatedSagaId}`));
    expect(one).toMatchObject({ id: seed.compensatedSagaId, status: 'compensated', error: 'payment says no' });
    expect(one.history.map((e: { step: string; event: string }) => `${e.step}:${e.event}`)).toEqual([
      '$saga:started', 'reserve:command_sent', 'reserve:completed', 'charge:command_sent', 'charge:failed',
      'reserve:compensation_sent', 'reserve:compensated', '$saga:compensated',
    ]);
    const bad = async (path: string, init?: RequestInit) => {
      const res = await fetch(`${d.url}${path}`, init);
      return { status: res.status, body: await json(res) };
    };
    expect(await bad(`api/sagas/${randomUUID()}`)).toMatchObject({ status: 404 });
    expect(await bad(`api/sagas/1'%20or%201=1`)).toEqual({ status: 400, body: { error: 'saga ids are UUIDs' } });
    expect(await bad('api/sagas?status=weird')).toMatchObject({ status: 400 });
    expect(await bad('api/dead-letters/1;drop/replay', { method: 'POST', headers: { 'content-type': 'application/json' } })).toMatchObject({ status: 400 });
    expect(await bad('api/nope')).toMatchObject({ status: 404 });
  });

  it('replays one dead letter back to its queue, only on a JSON POST', async () => {
    const d = await serve({ pool: p, port: 0 });
    const [dead] = await listDeadLetters(p, { queue: 'billing', limit: 1 });
    const url = `${d.url}api/dead-letters/${dead!.deadId}/replay`;
    expect((await fetch(url)).status).toBe(405);
    // A plain form post (what another site could send without CORS preflight) is refused.
    expect((await fetch(url, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' })).status).toBe(415);
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(2);
    const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(await json(res)).toEqual({ replayed: 1 });
    expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = $1 AND id = $2 AND attempts = 0', ['billing', dead!.id])).toBe(1);
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(1);
    const twice = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(twice.status).toBe(404);
  });

  it('needs a token off loopback, checks it, and refuses foreign Host names without one', async () => {
    await expect(serveDashboard({ pool: p, port: 0, host: '0.0.0.0' })).rejects.toSatisfy((e) => isSagaboxError(e, 'INVALID_OPTIONS'));
    const token = 'sEcReT-token-123';
    const d = await serve({ pool: p, port: 0, host: '0.0.0.0', token });
    const url = d.url.replace('0.0.0.0', '127.0.0.1');
    expect((await fetch(url)).status).toBe(200); // the page itself holds no data
    const denied = await fetch(`${url}api/overview`);
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toBe('Bearer');
    expect((await fetch(`${url}api/overview`, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    expect((await fetch(`${url}api/overview`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);

    const local = await serve({ pool: p, port: 0 });
    // fetch() will not send a foreign Host header; node:http will.
    const rebound = await new Promise<number>((resolve, reject) =>
      http.get(`${local.url}api/overview`, { headers: { host: 'evil.example' } }, (res) => { res.resume(); resolve(res.statusCode!); }).on('error', reject));
    expect(rebound).toBe(403);
  });

  it('pages dead letters with a cursor, newest first, each one once; refuses a bad cursor or limit', async () => {
    const d = await serve({ pool: p, port: 0 });
    await p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, headers, reason, error, attempts, created_at)
                   SELECT 'queue', 'paged', gen_random_uuid(), 'shop.paged', jsonb_build_object('n', g), '{}', 'failed', 'boom ' || g, 3, now()
                   FROM generate_series(1, 7) g`);
    try {
      const pages: string[][] = [];
      let before: string | null = null;
      do {
        const body: { deadLetters: { deadId: string; queue: string }[]; next: string | null } =
          await json(await fetch(`${d.url}api/dead-letters?queue=paged&limit=3${before ? `&before=${before}` : ''}`));
        expect(body.deadLetters.every((x) => x.queue === 'paged')).toBe(true);
        pages.push(body.deadLetters.map((x) => x.deadId));
        before = body.next;
      } while (before !== null && pages.length < 10);
      expect(pages.map((page) => page.length)).toEqual([3, 3, 1]);
      expect(pages.flat()).toEqual((await listDeadLetters(p, { queue: 'paged' })).map((x) => x.deadId));
      // A page that ends exactly at the last row has no next.
      const exact = await json(await fetch(`${d.url}api/dead-letters?queue=paged&limit=7`));
      expect(exact.deadLetters).toHaveLength(7);
      expect(exact.next).toBeNull();
      for (const bad of ['before=abc', 'before=-1', 'before=99999999999999999999', 'limit=0', 'limit=5000', 'limit=x']) {
        const res = await fetch(`${d.url}api/dead-letters?${bad}`);
        expect(res.status, bad).toBe(400);
      }
    } finally {
      await p.query(`DELETE FROM sagabox.dead_letters WHERE queue = 'paged'`);
    }
  });
});
