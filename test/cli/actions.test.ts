import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { prepare, publish } from '@sagabox/core';
import { addDirectRoute } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { runCli, runOnTerminal } from '../support/run-cli.js';

const { db, pool, count } = await useDatabase();
const p = pool(2);
const url = ['--database-url', db.url];
await addDirectRoute(p, { topic: 'cli.#', queue: 'cli-q' });

describe('sagabox messages retry | cancel | delete', () => {
  it('retries one message by id, and a filter only with a confirmation', async () => {
    const { ids } = await publish(p, [{ topic: 'cli.a', payload: {} }, { topic: 'cli.a', payload: {} }]);
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 1, run_at = now() + interval '1 hour', last_error = 'x' WHERE id = ANY($1)`, [ids]);
    const one = await runCli(['messages', 'retry', ids[0]!, '--queue', 'cli-q', '--json', ...url]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ action: 'retry', affected: 1, ids: [ids[0]] });
    // Again: it is ready now, nothing to retry.
    expect(await runCli(['messages', 'retry', ids[0]!, '--queue', 'cli-q', ...url])).toMatchObject({ code: 3 });
    // A filter without --yes and without a terminal is refused.
    expect((await runCli(['messages', 'retry', '--queue', 'cli-q', ...url])).code).toBe(2);
    const all = await runCli(['messages', 'retry', '--queue', 'cli-q', '--state', 'retrying', '--yes', ...url]);
    expect(all).toMatchObject({ code: 0, stdout: 'made ready: 1 message(s) of queue cli-q\n' });
    await p.query(`DELETE FROM sagabox.queue_messages`);
  });

  it('cancel goes to the dead letters with who and why; dlq replay --dry-run previews, replay brings it back', async () => {
    const { ids: [id] } = await publish(p, { topic: 'cli.cancel', payload: { n: 1 } });
    const cancelled = await runCli(['messages', 'cancel', id!, '--queue', 'cli-q', '--reason', 'hold it', '--by', 'alice', '--yes', '--json', ...url]);
    expect(cancelled.code).toBe(0);
    expect(JSON.parse(cancelled.stdout)).toMatchObject({ action: 'cancel', affected: 1, ids: [id] });
    const [dead] = JSON.parse((await runCli(['dlq', 'list', '--reason', 'cancelled', '--json', ...url])).stdout);
    expect(dead).toMatchObject({ id, reason: 'cancelled', error: 'cancelled by alice: hold it' });
    // --reason is required.
    expect((await runCli(['messages', 'cancel', id!, '--queue', 'cli-q', '--yes', ...url])).code).toBe(2);

    const preview = await runCli(['dlq', 'replay', '--queue', 'cli-q', '--reason', 'cancelled', '--dry-run', '--json', ...url]);
    expect(preview.code).toBe(0);
    expect(JSON.parse(preview.stdout)).toEqual({ dryRun: true, matching: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters`)).toBe(1);
    const replayed = await runCli(['dlq', 'replay', '--queue', 'cli-q', '--reason', 'cancelled', '--yes', '--json', ...url]);
    expect(JSON.parse(replayed.stdout)).toEqual({ replayed: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = $1`, [id])).toBe(1);
    expect(await runCli(['dlq', 'purge', '--queue', 'cli-q', '--dry-run', ...url])).toMatchObject({ code: 3, stdout: 'would be purged: 0\n' });
    await p.query(`DELETE FROM sagabox.queue_messages`);
  });

  it('delete: the dry run counts what the action then deletes; the prompt shows the count; a leased message is left alone', async () => {
    const { ids } = await publish(p, Array.from({ length: 4 }, (_, i) => ({ topic: 'cli.del', payload: { i } })));
    await p.query(`UPDATE sagabox.queue_messages SET lease_token = gen_random_uuid(), locked_until = now() + interval '5 minutes', locked_by = 'w1' WHERE id = $1`, [ids[0]]);
    const preview = JSON.parse((await runCli(['messages', 'delete', '--queue', 'cli-q', '--topic', 'cli.del', '--dry-run', '--json', ...url])).stdout);
    expect(preview).toMatchObject({ dryRun: true, affected: 3, inFlight: 1, inFlightIds: [ids[0]] });

    const declined = await runOnTerminal(['messages', 'delete', '--queue', 'cli-q', '--topic', 'cli.del', ...url], 'n');
    expect(declined.output).toMatch(/delete 3 message\(s\) of queue cli-q \(1 in flight left alone\)\? \[y\/N\]/);
    expect(declined.code).toBe(4);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages`)).toBe(4);

    const done = await runCli(['messages', 'delete', '--queue', 'cli-q', '--topic', 'cli.del', '--yes', '--json', ...url]);
    expect(done.code).toBe(0);
    expect(JSON.parse(done.stdout)).toMatchObject({ dryRun: false, affected: preview.affected, inFlight: 1 });
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages`)).toBe(1);

    const leased = await runCli(['messages', 'delete', ids[0]!, '--queue', 'cli-q', '--yes', ...url]);
    expect(leased.code).toBe(3);
    expect(leased.stderr).toBe('sagabox: nothing deleted: 1 matching message(s) in flight, left alone\n');
    expect(await runCli(['messages', 'delete', randomUUID(), '--queue', 'cli-q', '--yes', ...url])).toMatchObject({ code: 3 });
    expect(await runCli(['messages', 'delete', '--queue', 'no-such-queue', '--yes', ...url])).toMatchObject({ code: 3, stderr: 'sagabox: unknown queue: no-such-queue\n' });
    // Neither an id nor a filter: refused before touching the database.
    expect((await runCli(['messages', 'delete', '--yes', ...url])).code).toBe(2);
    await p.query(`DELETE FROM sagabox.queue_messages`);
  });
});

describe('sagabox half-messages commit | rollback', () => {
  it('records the operator decision, and refuses one already decided with exit 3', async () => {
    const { id } = await prepare(p, { topic: 'elsewhere.pay', payload: {} }, { checkAfterMs: 60_000 });
    const r = await runCli(['half-messages', 'commit', id, '--reason', 'PSP shows it', '--by', 'bob', '--yes', '--json', ...url]);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ messageId: id, decision: 'commit', source: 'operator', detail: 'bob: PSP shows it' });
    const again = await runCli(['half-messages', 'rollback', id, '--reason', 'late', '--by', 'carol', '--yes', ...url]);
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already decided \(commit\)/);
    expect((await runCli(['half-messages', 'commit', 'nope', '--reason', 'x', '--yes', ...url])).code).toBe(2);
    await p.query(`DELETE FROM sagabox.outbox`);
  });
});

describe('sagabox attention', () => {
  it('lists what needs attention and exits 5 when anything does', async () => {
    const before = await runCli(['attention', '--json', ...url]);
    const clean = JSON.parse(before.stdout);
    // Only a snapshot another session on this shared server holds could be listed here.
    expect(clean.total).toBe(clean.vacuum.blocked ? 1 : 0);
    expect(before.code).toBe(clean.total > 0 ? 5 : 0);

    const { ids: [id] } = await publish(p, { topic: 'cli.att', payload: {} });
    await p.query(`UPDATE sagabox.queue_messages SET attempts = 9, last_error = 'boom' WHERE id = $1`, [id]);
    const text = await runCli(['attention', ...url]);
    expect(text.code).toBe(5);
    expect(text.stdout).toMatch(new RegExp(`^near maxAttempts \\(1\\):\n {2}${id}  cli-q  cli.att  attempt 9: boom$`, 'm'));
    expect(text.stderr).toMatch(/item\(s\) need attention/);
    for (const line of text.stdout.trimEnd().split('\n')) expect(line.length).toBeLessThanOrEqual(80);
    const json = JSON.parse((await runCli(['attention', '--max-attempts', '20', '--json', ...url])).stdout);
    expect(json.nearMaxAttempts).toEqual([]);
    expect((await runCli(['attention', '--max-attempts', '0', ...url])).code).toBe(2);
  });
});
