import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeOrderSaga } from '../fixtures/saga-order.mjs';
import { getSaga } from '@sagabox/saga';
import { createSagaWorld, waitFor, type SagaWorld } from '../fixtures/saga-world.js';
import { runCli } from '../support/run-cli.js';

const orderSaga = makeOrderSaga({ compensationRetry: { maxAttempts: 2, delayMs: 50 } });
let world: SagaWorld;
let url: string[];

beforeAll(async () => {
  world = await createSagaWorld({ definitions: [orderSaga] });
  url = ['--database-url', world.orchestratorDb.url];
});
afterAll(() => world?.stop());

describe('sagabox sagas', () => {
  it('lists sagas by status and type, and shows one with its step timeline', async () => {
    const done = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5 });
    await world.waitForSaga(done, ['completed']);
    const undone = await world.start(orderSaga, { orderId: `o-${randomUUID()}`, amount: 5, failAt: 'payment' });
    await world.waitForSaga(undone, ['compensated']);

    const all = JSON.parse((await runCli(['sagas', 'list', '--json', ...url])).stdout) as { id: string; status: string }[];
    expect(all.map((s) => [s.id, s.status]).sort()).toEqual([[done, 'completed'], [undone, 'compensated']].sort());
    const completed = JSON.parse((await runCli(['sagas', 'list', '--status', 'completed', '--type', 'order', '--json', ...url])).stdout);
    expect(completed).toEqual([expect.objectContaining({ id: done, type: 'order', status: 'completed' })]);
    expect((await runCli(['sagas', 'list', '--type', 'nope', ...url])).stdout).toBe('no sagas\n');
    const table = await runCli(['sagas', 'list', ...url]);
    expect(table.stdout).toMatch(new RegExp(`${undone} │ order … │ compens…`));
    for (const line of table.stdout.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(80);

    const show = await runCli(['sagas', 'show', undone, ...url]);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/status\s+compensated \(payment says no\)/);
    expect(show.stdout).toMatch(/^ {2}last failure {2}step "charge" failed at \S+: payment says no$/m);
    const events = [...show.stdout.matchAll(/│\s*(\S+)\s*│\s*(\w+)\s*│[^│]*│\s*$/gm)].map((m) => `${m[1]}:${m[2]}`).filter((e) => e !== 'step:event');
    expect(events).toEqual(['$saga:started', 'reserve:command_sent', 'reserve:completed', 'charge:command_sent', 'charge:failed',
      'reserve:compensation_sent', 'reserve:compensated', '$saga:compensated']);
    const json = JSON.parse((await runCli(['sagas', 'show', done, '--json', ...url])).stdout);
    expect(json).toMatchObject({ id: done, status: 'completed' });
    expect(json.history.at(-1)).toMatchObject({ step: '$saga', event: 'completed' });
  });

  it('cancels a running saga (compensating its done steps) only with --yes', async () => {
    // The ship step is held until the cancel is applied. A step that took a fixed 15 s
    // often ended first on a loaded machine (each CLI run takes seconds): the saga then
    // completed, and the cancel was refused or came too late.
    const id = randomUUID();
    const shipping = world.services.find((s) => s.name === 'shipping')!;
    await shipping.pool.query('INSERT INTO held (saga_id) VALUES ($1)', [id]);
    await world.start(orderSaga, { orderId: `o-${id}`, amount: 5, holdAt: 'shipping' }, id);
    await world.waitForSaga(id, ['running']);
    // Why it waits: the pending step, its command and when it was sent.
    await waitFor('the ship command sent', async () =>
      ((await getSaga(world.pool, id))?.history.some((e) => e.step === 'ship' && e.event === 'command_sent') ? true : undefined));
    const shown = await runCli(['sagas', 'show', id, ...url]);
    expect(shown.stdout).toMatch(/^ {2}waiting {2}step "ship": command shipping\.ship \(attempt 1\) sent \S+, [\d.]+m?s ago$/m);
    const refused = await runCli(['sagas', 'cancel', id, ...url]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/^sagabox: cancel saga .* refusing without --yes/);
    const ok = await runCli(['sagas', 'cancel', id, '--yes', '--reason', 'customer changed mind', ...url]);
    expect(ok).toEqual({ code: 0, stdout: `cancel requested for saga ${id}\n`, stderr: '' });
    await waitFor('the cancel applied', async () =>
      ((await getSaga(world.pool, id))?.history.some((e) => e.step === '$saga' && e.event === 'cancelled') ? true : undefined));
    await shipping.pool.query('DELETE FROM held WHERE saga_id = $1', [id]);
    const saga = await world.waitForSaga(id, ['compensated', 'completed', 'failed']);
    expect(saga.status).toBe('compensated');
    expect(saga.history.map((e) => `${e.step}:${e.event}`)).toContain('reserve:compensated');
    // Cancelling again: the saga is no longer running.
    const again = await runCli(['sagas', 'cancel', id, '--yes', ...url]);
    expect(again.code).toBe(3);
    expect(again.stderr).toBe(`sagabox: saga ${id} is compensated; cancel needs it running\n`);
  });

  it('retries a failed saga', async () => {
    const id = randomUUID();
    const payment = world.services.find((s) => s.name === 'payment')!;
    await payment.pool.query('INSERT INTO blocked_undo (saga_id) VALUES ($1)', [id]);
    await world.start(orderSaga, { orderId: `o-${id}`, amount: 5, failAt: 'shipping' }, id);
    await world.waitForSaga(id, ['failed']);
    expect(JSON.parse((await runCli(['sagas', 'list', '--status', 'failed', '--json', ...url])).stdout)).toEqual([expect.objectContaining({ id })]);
    await payment.pool.query('DELETE FROM blocked_undo WHERE saga_id = $1', [id]);
    const ok = await runCli(['sagas', 'retry', id, '--yes', ...url]);
    expect(ok).toMatchObject({ code: 0, stdout: `retry requested for saga ${id}\n` });
    expect((await world.waitForSaga(id, ['compensated'])).status).toBe('compensated');
  });

  it('gives one clear line for unknown ids, malformed ids and bad filters', async () => {
    const missing = randomUUID();
    expect(await runCli(['sagas', 'show', missing, ...url])).toMatchObject({ code: 3, stderr: `sagabox: no saga ${missing}\n` });
    expect(await runCli(['sagas', 'cancel', missing, '--yes', ...url])).toMatchObject({ code: 3, stderr: `sagabox: no saga ${missing}\n` });
    expect(await runCli(['sagas', 'retry', missing, '--yes', ...url])).toMatchObject({ code: 3, stderr: `sagabox: no saga ${missing}\n` });
    const malformed = await runCli(['sagas', 'show', "1'; drop table x", ...url]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/^sagabox: saga ids are UUIDs/);
    expect((await runCli(['sagas', 'list', '--status', 'weird', ...url])).stderr).toMatch(/^sagabox: --status must be one of running, /);
  });
});
