import { createHash } from 'node:crypto';
// Tokens and their permissions, enforced by the server: a read-only token sees no
// payload and cannot act; payloads and actions are each granted on their own.
import { afterAll, describe, expect, it } from 'vitest';
import { listDeadLetters, listHalfMessages, listMessages, queueStats } from '@sagabox/core/admin';
import { getSaga } from '@sagabox/saga';
import { serveDashboard, type DashboardServer } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { pool, count } = await useDatabase();
const p = pool(6);
const seed = await seedDashboard(p);
const d: DashboardServer = await serveDashboard({
  pool: p, port: 0,
  tokens: [
    { name: 'viewer', token: 'viewer-token-1', permissions: [] },
    { name: 'privacy', token: 'privacy-token-1', permissions: ['payloads'] },
    { name: 'oncall', token: 'oncall-token-1', permissions: ['actions'] },
  ],
});
afterAll(() => d.stop());

const JSON_POST = { method: 'POST', headers: { 'content-type': 'application/json' } } as const;
async function signIn(token: string): Promise<string> {
  const res = await fetch(`${d.url}api/login`, { ...JSON_POST, body: JSON.stringify({ token }) });
  expect(res.status).toBe(200);
  return res.headers.get('set-cookie')!.split(';')[0]!;
}
const get = (path: string, cookie?: string) => fetch(`${d.url}api/${path}`, { headers: cookie ? { cookie } : {} });
/** The part of GET /api/messages/:id these tests read. */
type MessageDetail = { copies: [{ payload: unknown; payloadHidden?: boolean }] };
const post = (path: string, cookie: string, body: unknown = {}) => fetch(`${d.url}api/${path}`, { ...JSON_POST, headers: { ...JSON_POST.headers, cookie }, body: JSON.stringify(body) });

describe('dashboard access', () => {
  it('answers nothing but the page and the login before signing in; refuses unknown and tampered credentials', async () => {
    expect((await fetch(d.url)).status).toBe(200);
    for (const path of ['session', 'overview', 'messages?queue=orders', `sagas/${seed.compensatedSagaId}`]) expect((await get(path)).status).toBe(401);
    const wrong = await fetch(`${d.url}api/login`, { ...JSON_POST, body: JSON.stringify({ token: 'viewer-token-2' }) });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    const cookie = await signIn('viewer-token-1');
    // The cookie names the token and its expiry, signed with the token: change either and it is refused.
    const [body, mac] = cookie.split('=')[1]!.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString());
    expect(claims).toEqual({ n: 'viewer', e: expect.any(Number) });
    const forged = Buffer.from(JSON.stringify({ ...claims, n: 'oncall' })).toString('base64url');
    expect((await get('session', `sagabox_dashboard=${forged}.${mac}`)).status).toBe(401);
    const expired = Buffer.from(JSON.stringify({ ...claims, e: Date.now() - 1 })).toString('base64url');
    expect((await get('session', `sagabox_dashboard=${expired}.${mac}`)).status).toBe(401);
    expect((await get('session', cookie)).status).toBe(200);
    // Bearer works as well, for scripts.
    expect((await fetch(`${d.url}api/session`, { headers: { authorization: 'Bearer oncall-token-1' } })).status).toBe(200);
    const out = await post('logout', cookie);
    expect(out.headers.get('set-cookie')).toMatch(/^sagabox_dashboard=; Path=\/; Max-Age=0;/);
  });

  it('hides payloads from a token without the payloads permission, in message details and dead letters', async () => {
    const [orderMessage] = (await listMessages(p, { queue: 'orders', limit: 1 })).messages;
    const viewer = await signIn('viewer-token-1');
    expect(await (await get('session', viewer)).json()).toMatchObject({ name: 'viewer', permissions: ['read'] });
    const hidden = (await (await get(`messages/${orderMessage!.id}`, viewer)).json()) as MessageDetail;
    expect(hidden.copies[0]).toMatchObject({ queue: 'orders', payload: null, payloadHidden: true, headers: expect.any(Object) });
    expect(JSON.stringify(hidden)).not.toContain('"n":');
    const dead = (await (await get('overview', viewer)).json()) as { deadLetters: unknown[] };
    expect(dead.deadLetters.length).toBe(2);
    for (const x of dead.deadLetters) expect(x).toMatchObject({ payload: null, payloadHidden: true });
    const billing = ((await (await get('dead-letters?queue=billing', viewer)).json()) as { deadLetters: { payload: unknown }[] }).deadLetters;
    expect(billing.length).toBeGreaterThan(0);
    for (const x of billing) expect(x.payload).toBeNull();

    const privacy = await signIn('privacy-token-1');
    const shown = (await (await get(`messages/${orderMessage!.id}`, privacy)).json()) as MessageDetail;
    expect(shown.copies[0].payload).toEqual({ n: 1 });
    expect(shown.copies[0].payloadHidden).toBeUndefined();
    expect(((await (await get('dead-letters', privacy)).json()) as { deadLetters: { payload: { n: number } }[] }).deadLetters.map((x) => x.payload).sort((a, b) => a.n - b.n)).toEqual([{ n: 5 }, { n: 6 }]);
  });

  it('refuses every action to tokens without the actions permission, changing nothing; allows them to one with it', async () => {
    const [dead] = await listDeadLetters(p, { queue: 'billing', limit: 1 });
    const halfId = (await listHalfMessages(p))[0]!.id;
    const attempts = [
      ['queues/orders/pause', {}], ['dead-letters/replay', { filter: {} }], ['dead-letters/purge', { filter: {} }],
      [`dead-letters/${dead!.deadId}/replay`, {}], [`sagas/${seed.runningSagaIds[0]}/cancel`, {}], [`sagas/${seed.runningSagaIds[0]}/retry`, {}],
      ['messages/retry', { filter: { queue: 'orders' } }], ['messages/cancel', { filter: { queue: 'orders' } }], ['messages/delete', { filter: { queue: 'orders' } }],
      [`half-messages/${halfId}/commit`, {}], [`half-messages/${halfId}/rollback`, {}],
    ] as const;
    for (const name of ['viewer-token-1', 'privacy-token-1']) {
      const cookie = await signIn(name);
      for (const [path, body] of attempts) {
        const res = await post(path, cookie, body);
        expect({ path, status: res.status }).toEqual({ path, status: 403 });
      }
    }
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).toBeNull();
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(2);
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE topic = 'sagabox.saga.control'`)).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders'`)).toBe(4);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders' AND run_at > now()`)).toBe(1);
    expect((await listHalfMessages(p)).length).toBe(2);

    const oncall = await signIn('oncall-token-1');
    expect(await (await post('queues/orders/pause', oncall)).json()).toMatchObject({ queue: 'orders', changed: true });
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).not.toBeNull();
    expect(await (await post('queues/orders/resume', oncall)).json()).toMatchObject({ changed: true });
    // Bulk: the dry run's count is what the action then does.
    const preview = await (await post('dead-letters/purge', oncall, { filter: { queue: 'billing', reason: 'non_retryable' }, dryRun: true })).json();
    expect(preview).toEqual({ action: 'purge', dryRun: true, affected: 2 });
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(2);
    expect(await (await post('dead-letters/replay', oncall, { filter: { queue: 'billing', deadIds: [dead!.deadId] } })).json()).toEqual({ action: 'replay', dryRun: false, affected: 1 });
    expect(await (await post('dead-letters/purge', oncall, { filter: { queue: 'billing' } })).json()).toEqual({ action: 'purge', dryRun: false, affected: 1 });
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters')).toBe(0);
    // A saga: cancel a running one (a control message through the outbox); a finished one conflicts.
    expect((await post(`sagas/${seed.runningSagaIds[0]}/cancel`, oncall, { reason: 'customer asked' })).status).toBe(200);
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE headers->>'saga-id' = $1 AND payload->>'kind' = 'cancel'`, [seed.runningSagaIds[0]])).toBe(1);
    const conflict = await post(`sagas/${seed.compensatedSagaId}/cancel`, oncall);
    expect(conflict.status).toBe(409);
    expect(await conflict.json()).toMatchObject({ code: 'SAGA_CONFLICT' });
    expect((await getSaga(p, seed.compensatedSagaId))!.status).toBe('compensated');
    // Bad input is a 400, not a 500.
    expect((await post('dead-letters/replay', oncall, { filter: { deadIds: ['x'] } })).status).toBe(400);
    expect((await post('dead-letters/replay', oncall, { filter: [] })).status).toBe(400);
    expect((await post('queues/NOT%20A%20QUEUE/pause', oncall)).status).toBe(400);
    expect((await post('queues/nosuchqueue/pause', oncall)).status).toBe(404);
  });

  it('makes an address that failed to sign in ten times in a minute wait, by form and by bearer alike', async () => {
    const own = await serveDashboard({ pool: p, port: 0, tokens: [{ name: 'oncall', token: 'oncall-token-1', permissions: [] }] });
    try {
      const login = (token: string) => fetch(`${own.url}api/login`, { ...JSON_POST, body: JSON.stringify({ token }) });
      for (let i = 0; i < 5; i++) expect((await login(`guess-${i}-xxxx`)).status).toBe(401);
      for (let i = 0; i < 5; i++) expect((await fetch(`${own.url}api/overview`, { headers: { authorization: `Bearer guess-${i}-yyyy` } })).status).toBe(401);
      const blocked = await login('oncall-token-1');
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await fetch(`${own.url}api/overview`, { headers: { authorization: 'Bearer oncall-token-1' } })).status).toBe(429);
    } finally {
      await own.stop();
    }
  });

  it('lets the page run only its own script and stylesheet (Content-Security-Policy with their hashes)', async () => {
    const res = await fetch(d.url);
    const csp = res.headers.get('content-security-policy')!;
    const html = await res.text();
    const script = /<script>([\s\S]*)<\/script>/.exec(html)![1]!;
    const style = /<style>([\s\S]*)<\/style>/.exec(html)![1]!;
    const sha = (text: string) => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;
    expect(csp).toContain(`script-src ${sha(script)};`);
    expect(csp).toContain(`style-src ${sha(style)};`);
    expect(csp).toMatch(/^default-src 'none';/);
    expect(csp).not.toContain('unsafe');
    expect(res.headers.get('x-frame-options')).toBe('DENY');
  });
});
