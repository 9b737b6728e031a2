import { describe, expect, it } from 'vitest';
import { useDatabase } from '../support/test-pool.js';
import { runCli, runOnTerminal } from '../support/run-cli.js';

const { db, pool, count } = await useDatabase();
const p = pool(2);
const url = ['--database-url', db.url];

const deadLetter = (error = 'boom'): Promise<unknown> =>
  p.query(`INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
           VALUES ('queue', 'conv-q', gen_random_uuid(), 'conv.a', '{}', 'failed', $1, 3, now())`, [error]);

describe('sagabox CLI conventions', () => {
  it('exits 3 when a requested action did nothing, with the --json result still on stdout', async () => {
    expect(await runCli(['dlq', 'replay', '999', '--yes', ...url])).toEqual({
      code: 3, stdout: 'replayed 0\n', stderr: 'sagabox: no dead letter matched: nothing replayed\n',
    });
    const json = await runCli(['dlq', 'purge', '999', '--yes', '--json', ...url]);
    expect(json.code).toBe(3);
    expect(JSON.parse(json.stdout)).toEqual({ purged: 0 });

    await deadLetter();
    const purged = await runCli(['dlq', 'purge', '--queue', 'conv-q', '--yes', '--json', ...url]);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout)).toEqual({ purged: 1 });

    const added = await runCli(['routes', 'add', 'conv.*', 'conv-q', '--json', ...url]);
    expect(JSON.parse(added.stdout)).toEqual({ topic: 'conv.*', queue: 'conv-q', added: true });
    const removed = await runCli(['routes', 'remove', 'conv.*', 'conv-q', '--json', ...url]);
    expect([removed.code, JSON.parse(removed.stdout)]).toEqual([0, { topic: 'conv.*', queue: 'conv-q', removed: true }]);
    const again = await runCli(['routes', 'remove', 'conv.*', 'conv-q', '--json', ...url]);
    expect([again.code, JSON.parse(again.stdout)]).toEqual([3, { topic: 'conv.*', queue: 'conv-q', removed: false }]);
  });

  it('exits 4 when the prompt is declined, and acts when it is accepted', async () => {
    await deadLetter();
    const declined = await runOnTerminal(['dlq', 'purge', '--queue', 'conv-q', ...url], 'n');
    expect(declined.output).toMatch(/delete 1 matching dead letter\(s\) for good\? \[y\/N\]/);
    expect(declined.output).toMatch(/sagabox: declined: nothing done/);
    expect(declined.code).toBe(4);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE queue = 'conv-q'`)).toBe(1);

    const accepted = await runOnTerminal(['dlq', 'purge', '--queue', 'conv-q', ...url], 'y');
    expect(accepted.output).toMatch(/purged 1/);
    expect(accepted.code).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE queue = 'conv-q'`)).toBe(0);
  });

  it('exits 2 on a filter value that can match nothing, before touching the database', async () => {
    const bogus = await runCli(['dlq', 'list', '--reason', 'bogus', ...url]);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toMatch(/argument 'bogus' is invalid\. Allowed choices are failed, timeout, expired, invalid/);
    const badAge = await runCli(['dlq', 'list', '--older-than', '3 weeks', ...url]);
    expect(badAge).toMatchObject({ code: 2, stdout: '' });
    expect(badAge.stderr).toMatch(/^sagabox: --older-than must be a duration .* got "3 weeks"\n$/);
  });

  it('takes durations as 90s, 15m, 7d as well as milliseconds', async () => {
    await deadLetter('old');
    await p.query(`UPDATE sagabox.dead_letters SET dead_at = now() - interval '2 days' WHERE error = 'old'`);
    await deadLetter('new');
    const list = async (age: string): Promise<string[]> =>
      (JSON.parse((await runCli(['dlq', 'list', '--older-than', age, '--json', ...url])).stdout) as { error: string }[]).map((d) => d.error);
    expect(await list('1d')).toEqual(['old']);
    expect(await list('36h')).toEqual(['old']);
    expect(await list('3d')).toEqual([]);
    expect(await list(String(3_600_000))).toEqual(['old']);
    expect(await list('90s')).toEqual(['old']);
    await p.query(`DELETE FROM sagabox.dead_letters WHERE queue = 'conv-q'`);
  });

  it('fits tables into 80 columns, cutting long values with an ellipsis', async () => {
    await deadLetter(`a long error ${'x'.repeat(300)}`);
    const { stdout, code } = await runCli(['dlq', 'list', ...url]);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(80);
    expect(stdout).toMatch(/│ a long error x+… │/);
    // --json keeps the value whole.
    expect((await runCli(['dlq', 'list', '--json', ...url])).stdout).toContain('x'.repeat(300));
  });

  it('says what to run on a database that was never migrated', async () => {
    for (const args of [['queues'], ['dlq', 'list'], ['sagas', 'list'], ['routes', 'list']]) {
      const run = await runCli([...args, '--schema', 'never_migrated', ...url]);
      expect(run).toEqual({
        code: 1, stdout: '', stderr: 'sagabox: schema "never_migrated" was never migrated in this database: run `sagabox migrate up --schema never_migrated` first\n',
      });
    }
  });

  it('documents its exit codes in --help', async () => {
    const help = await runCli(['--help']);
    expect(help.stdout).toMatch(/Exit codes:\n {2}0 {2}done\n[\s\S]*3 {2}nothing matched[\s\S]*4 {2}declined[\s\S]*5 {2}check failed/);
  });
});
