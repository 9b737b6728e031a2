// The dashboard mounted under /ops of an existing app: plain node:http, Express and
// Fastify, each with an app route of its own beside it.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { queueStats } from '@sagabox/core/admin';
import { createDashboardHandler, serveDashboard, type DashboardToken } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { pool } = await useDatabase();
const p = pool(6);
await seedDashboard(p);
const tokens: DashboardToken[] = [{ name: 'alice', token: 'alice-token-123', permissions: ['actions'] }];
const stops: (() => Promise<void>)[] = [];
afterAll(async () => { for (const stop of stops) await stop(); });

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  stops.push(() => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); }));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const hosts: Record<string, () => Promise<string>> = {
  'node:http': async () => {
    const dashboard = createDashboardHandler({ pool: p, tokens, basePath: '/ops' });
    return listen(http.createServer((req, res) => {
      if (/^\/ops(\/|\?|$)/.test(req.url!)) return dashboard(req, res);
      res.end('app home');
    }));
  },
  express: async () => {
    const app = express();
    app.use(express.json()); // the app parses bodies itself: the dashboard takes req.body
    app.use('/ops', createDashboardHandler({ pool: p, tokens }));
    app.get('/', (_req, res) => { res.send('app home'); });
    return listen(http.createServer(app));
  },
  fastify: async () => {
    const app = Fastify();
    const dashboard = createDashboardHandler({ pool: p, tokens, basePath: '/ops' });
    const mount = (request: { raw: http.IncomingMessage; body: unknown }, reply: { hijack(): void; raw: http.ServerResponse }): void => {
      reply.hijack();
      dashboard(Object.assign(request.raw, { body: request.body }), reply.raw);
    };
    app.all('/ops', mount);
    app.all('/ops/*', mount);
    app.get('/', async () => 'app home');
    await app.listen({ port: 0, host: '127.0.0.1' });
    stops.push(() => app.close());
    return `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  },
};

describe.each(Object.keys(hosts))('dashboard mounted under /ops of a %s app', (host) => {
  it('serves the page at /ops/ with relative URLs, signs in with a cookie scoped to /ops/, acts, and leaves the app its routes', async () => {
    const base = await hosts[host]!();
    expect(await (await fetch(`${base}/`)).text()).toBe('app home');

    const bare = await fetch(`${base}/ops?x=1`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/ops/?x=1');
    const page = await (await fetch(`${base}/ops/`)).text();
    expect(page).toMatch(/<title>sagabox dashboard<\/title>/);
    // Every API call of the page is relative to where it is mounted.
    expect(page).toMatch(/fetch\("api\/"/);
    expect(page).not.toMatch(/fetch\(["'`]\//);
    expect(page).not.toMatch(/(href|src|action)="\//);

    expect((await fetch(`${base}/ops/api/overview`)).status).toBe(401);
    const login = await fetch(`${base}/ops/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: 'alice-token-123' }) });
    expect(login.status).toBe(200);
    const cookie = login.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^sagabox_dashboard=[^;]+; Path=\/ops\/; Max-Age=28800; HttpOnly; SameSite=Strict$/);
    const session = cookie.split(';')[0]!;
    expect(await (await fetch(`${base}/ops/api/session`, { headers: { cookie: session } })).json()).toMatchObject({ name: 'alice', permissions: ['read', 'actions'] });
    const o = (await (await fetch(`${base}/ops/api/overview`, { headers: { cookie: session } })).json()) as { queues: { queue: string }[] };
    expect(o.queues.map((q: { queue: string }) => q.queue)).toEqual(expect.arrayContaining(['orders', 'billing']));

    // An action with a JSON body, whether the host parsed it (Express, Fastify) or not (http).
    const pause = await fetch(`${base}/ops/api/queues/orders/pause`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json' }, body: '{}' });
    expect(pause.status).toBe(200);
    expect((await queueStats(p, { queues: ['orders'] }))[0]!.pausedAt).not.toBeNull();
    const preview = await fetch(`${base}/ops/api/dead-letters/replay`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json' }, body: JSON.stringify({ filter: { queue: 'billing' }, dryRun: true }) });
    expect(await preview.json()).toMatchObject({ dryRun: true, affected: 2 });
    const resume = await fetch(`${base}/ops/api/queues/orders/resume`, { method: 'POST', headers: { cookie: session, 'content-type': 'application/json' }, body: '{}' });
    expect(await resume.json()).toMatchObject({ queue: 'orders', changed: true, pausedAt: null });
    expect((await fetch(`${base}/ops/api/nope`, { headers: { cookie: session } })).status).toBe(404);
  });
});

describe('serveDashboard alone', () => {
  it('still serves the page at / and the API at /api/', async () => {
    const d = await serveDashboard({ pool: p, port: 0 });
    stops.push(() => d.stop());
    expect((await fetch(d.url)).status).toBe(200);
    expect((await fetch(`${d.url}api/session`)).status).toBe(200);
    expect(await (await fetch(`${d.url}api/session`)).json()).toMatchObject({ name: 'local', permissions: ['read', 'actions'], loginRequired: false });
  });

  it('rejects a malformed basePath and bad tokens at once, before serving anything', () => {
    let caught: unknown;
    try {
      createDashboardHandler({ pool: p, basePath: 'ops/', tokens: [{ name: 'a', token: 'short', permissions: ['everything' as never] }, { name: 'a', token: 'long-enough', permissions: [] }] });
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ code: 'INVALID_OPTIONS' });
    expect((caught as { details: { problems: string[] } }).details.problems).toEqual([
      'tokens[0].token must be 8-1024 characters',
      'tokens[0].permissions must be a list of read, payloads, actions',
      'tokens[1].name a is used twice',
      'basePath must look like /ops (no trailing slash), got "ops/"',
    ]);
  });
});
