// The dashboard's actions on messages, half messages and sagas, and its needs-attention
// read, through the HTTP API against the admin functions of @sagabox/core and @sagabox/saga.
import { afterAll, describe, expect, it } from 'vitest';
import { halfMessageHistory, listDeadLetters, listHalfMessages, listMessages } from '@sagabox/core/admin';
import { serveDashboard } from '@sagabox/dashboard';
import { useDatabase } from '../support/test-pool.js';
import { seedDashboard } from '../support/seed-dashboard.js';

const { pool, count } = await useDatabase();
const p = pool(6);
const seed = await seedDashboard(p);
const d = await serveDashboard({ pool: p, port: 0, tokens: [{ name: 'oncall', token: 'oncall-token-1', permissions: ['actions'] }] });
afterAll(() => d.stop());

const headers = { authorization: 'Bearer oncall-token-1', 'content-type': 'application/json' };
async function post(path: string, body: unknown = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(`${d.url}api/${path}`, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}
async function get(path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${d.url}api/${path}`, { headers });
  return { status: res.status, body: await res.json() };
}
const orders = async (state?: 'ready' | 'scheduled') => (await listMessages(p, { queue: 'orders', ...(state ? { state } : {}) })).messages;

describe('dashboard actions on messages', () => {
  it('retries a scheduled message now: the preview counts it and changes nothing, the action then makes it ready', async () => {
    const [scheduled] = await orders('scheduled');
    const filter = { queue: 'orders', id: scheduled!.id };
    const preview = await post('messages/retry', { filter, dryRun: true });
    expect(preview).toEqual({ status: 200, body: expect.objectContaining({ action: 'retry', dryRun: true, affected: 1, ids: [scheduled!.id], inFlight: 0 }) });
    expect((await orders('scheduled')).map((m) => m.id)).toEqual([scheduled!.id]);
    expect((await post('messages/retry', { filter })).body).toMatchObject({ dryRun: false, affected: 1 });
    expect(await orders('scheduled')).toEqual([]);
    expect(await orders('ready')).toHaveLength(4);
  });

  it('cancels one message into the dead letters, recorded with the signed-in name and the reason, and deletes by filter', async () => {
    const [first] = await orders();
    expect((await post('messages/cancel', { filter: { queue: 'orders', id: first!.id }, reason: 'bad address' })).body).toMatchObject({ action: 'cancel', affected: 1 });
    const [dead] = await listDeadLetters(p, { queue: 'orders' });
    expect(dead).toMatchObject({ id: first!.id, reason: 'cancelled', error: expect.stringContaining('oncall') });
    expect(dead!.error).toContain('bad address');

    const byKey = { queue: 'orders', key: 'k2' };
    expect((await post('messages/delete', { filter: byKey, dryRun: true })).body).toMatchObject({ affected: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders' AND key = 'k2'`)).toBe(1);
    expect((await post('messages/delete', { filter: byKey })).body).toMatchObject({ affected: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE queue = 'orders' AND key = 'k2'`)).toBe(0);
    expect(await orders()).toHaveLength(2);
  });

  it('answers bad filters with 400 before changing anything', async () => {
    const before = await count('SELECT count(*) AS n FROM sagabox.queue_messages');
    for (const body of [{ filter: 'x' }, { filter: { queue: 'orders', state: 'in_flight' } }, { filter: { queue: 'orders', id: 'nope' } }, { filter: { queue: 'orders', topic: 7 } }, { filter: {}, dryRun: 'yes' }]) {
      const res = await post('messages/delete', body);
      expect({ body, status: res.status }).toEqual({ body, status: 400 });
    }
    expect((await post('messages/delete', { filter: { queue: 'nosuchqueue' } })).status).toBe(404);
    expect(await count('SELECT count(*) AS n FROM sagabox.queue_messages')).toBe(before);
  });
});

describe('dashboard actions on half messages and sagas', () => {
  it('commits and rolls back prepared half messages as an operator decision, once', async () => {
    const [a, b] = await listHalfMessages(p);
    const committed = await post(`half-messages/${a!.id}/commit`, { reason: 'payment seen in the bank statement' });
    expect(committed).toEqual({ status: 200, body: expect.objectContaining({ messageId: a!.id, decision: 'commit', source: 'operator' }) });
    expect((await halfMessageHistory(p, a!.id)).at(-1)).toMatchObject({ decision: 'commit', source: 'operator', detail: expect.stringContaining('oncall') });
    const again = await post(`half-messages/${a!.id}/rollback`, { reason: 'changed my mind' });
    expect(again).toMatchObject({ status: 409, body: { code: 'HALF_MESSAGE_ALREADY_DECIDED' } });
    expect((await post(`half-messages/${b!.id}/rollback`)).body).toMatchObject({ decision: 'rollback', source: 'operator' });
    expect(await listHalfMessages(p)).toEqual([]);
    expect((await post('half-messages/not-a-uuid/commit')).status).toBe(400);
  });

  it('asks a running saga to re-send its pending step', async () => {
    const id = seed.runningSagaIds[1]!;
    expect((await post(`sagas/${id}/retry`)).body).toEqual({ sagaId: id, requested: 'retry' });
    expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE headers->>'saga-id' = $1 AND payload->>'kind' = 'retry'`, [id])).toBe(1);
    expect((await post(`sagas/${seed.compensatedSagaId}/retry`)).status).toBe(409);
  });
});

describe('needs attention', () => {
  it('lists a message near its last attempt, judged by the maxAttempts asked for', async () => {
    const [m] = await orders();
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 9, last_error = 'smtp 451' WHERE queue = 'orders' AND id = $1`, [m!.id]);
    const report = await get('attention');
    expect(report.status).toBe(200);
    expect(report.body.nearMaxAttempts).toEqual([expect.objectContaining({ id: m!.id, attempts: 9, lastError: 'smtp 451' })]);
    expect(report.body.total).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(report.body)).not.toContain('payload');
    expect((await get('attention?maxAttempts=20')).body.nearMaxAttempts).toEqual([]);
    expect((await get('attention?maxAttempts=x')).status).toBe(400);
  });
});
