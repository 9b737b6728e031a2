import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '@sagabox/testing';
import { runCli } from '../support/run-cli.js';

let db: TestDatabase;
let appDir: string;

beforeAll(async () => {
  db = await createTestDatabase();
  appDir = mkdtempSync(join(tmpdir(), 'sagabox-cli-app-'));
  writeFileSync(
    join(appDir, '0001_cli_orders.sql'),
    '-- migrate:up\nCREATE TABLE cli_orders (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE cli_orders;\n',
  );
});

afterAll(async () => {
  await db?.drop();
  if (appDir) rmSync(appDir, { recursive: true, force: true });
});

describe('sagabox migrate (built binary)', () => {
  it('prints help for every command and exits 0', async () => {
    for (const args of [['--help'], ['migrate', '--help'], ['migrate', 'up', '--help'], ['migrate', 'down', '--help'], ['migrate', 'status', '--help']]) {
      const run = await runCli(args);
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.stdout).toContain('Usage: sagabox');
    }
    const up = await runCli(['migrate', 'up', '--help']);
    for (const flag of ['--database-url', '--schema', '--dir', '--json']) expect(up.stdout).toContain(flag);
  });

  it('runs up, status and down against a database', async () => {
    const flags = ['--database-url', db.url, '--schema', 'cli_one'];

    // Pending migrations are a failed check (exit 5), with the status still on stdout.
    const pending = await runCli(['migrate', 'status', ...flags, '--json']);
    expect(pending.code, pending.stderr).toBe(5);
    expect(pending.stderr).toMatch(/^sagabox: schema cli_one is not up to date: \d+ pending\n$/);
    const before = JSON.parse(pending.stdout) as { schema: string; migrations: Array<{ status: string }> };
    expect(before.schema).toBe('cli_one');
    expect(before.migrations.length).toBeGreaterThan(0);
    expect(before.migrations.every((m) => m.status === 'pending')).toBe(true);

    const up = await runCli(['migrate', 'up', ...flags]);
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(/^applied 0001_\w+ \(sagabox\)$/m);

    const again = await runCli(['migrate', 'up', ...flags]);
    expect(again.stdout).toBe('nothing to apply: all migrations are applied\n');

    const table = await runCli(['migrate', 'status', ...flags]);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('schema cli_one');
    expect(table.stdout).toMatch(/0001_\w+\s+│ applied │ \d{4}-\d\d-\d\dT/);
    expect(table.stdout).toContain('up to date');

    const down = await runCli(['migrate', 'down', ...flags, '--json']);
    expect(down.code, down.stderr).toBe(0);
    expect(JSON.parse(down.stdout)).toMatchObject({ reverted: { set: 'sagabox' } });
    const after = await runCli(['migrate', 'status', ...flags]);
    expect(after.stdout).toContain('1 pending');
    expect(after.code).toBe(5);
  });

  it('takes the URL from DATABASE_URL and the application folder from --dir', async () => {
    const env = { ...process.env, DATABASE_URL: db.url };
    const up = await runCli(['migrate', 'up', '--schema', 'cli_two', '--dir', appDir, '--json'], env);
    expect(up.code, up.stderr).toBe(0);
    expect(JSON.parse(up.stdout).applied).toContainEqual({ set: 'app', name: '0001_cli_orders' });
    const status = await runCli(['migrate', 'status', '--schema', 'cli_two', '--dir', appDir], env);
    expect(status.stdout).toMatch(/app\s+│ 0001_cli_orders\s+│ applied/);
    const down = await runCli(['migrate', 'down', '--schema', 'cli_two', '--dir', appDir], env);
    expect(down.stdout).toBe('reverted 0001_cli_orders (app)\n');
  });

  it('exits 2 with one line when no database URL is given', async () => {
    const run = await runCli(['migrate', 'status']);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe('sagabox: no database URL: pass --database-url <url> or set DATABASE_URL\n');
  });

  it('exits 2 with one line on an invalid schema name, before connecting', async () => {
    const run = await runCli(['migrate', 'up', '--database-url', 'postgres://nobody@127.0.0.1:1/x', '--schema', 'Robert"); DROP']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/^sagabox: invalid migrate options: invalid schema name/);
  });

  it('exits 2 on an unknown flag', async () => {
    const run = await runCli(['migrate', 'up', '--no-such-flag']);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown option '--no-such-flag'");
  });

  it('exits 1 with one line, and no stack trace, when a migration fails', async () => {
    const broken = mkdtempSync(join(tmpdir(), 'sagabox-cli-broken-'));
    try {
      writeFileSync(join(broken, '0001_broken.sql'), '-- migrate:up\nSELECT no_such_function();\n');
      const run = await runCli(['migrate', 'up', '--database-url', db.url, '--schema', 'cli_three', '--dir', broken]);
      expect(run.code).toBe(1);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stderr).toMatch(/^sagabox: migration 0001_broken\.sql \(app\) failed: function no_such_function\(\) does not exist/);
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });
});
