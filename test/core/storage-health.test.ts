import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { isSagaboxError } from '@sagabox/core';
import { storageHealth } from '@sagabox/core/admin';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';
import { runCli } from '../support/run-cli.js';

const { db, pool } = await useDatabase();
const p = pool(4);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('storageHealth', () => {
  it('rejects bad options with INVALID_OPTIONS before any SQL', async () => {
    const err = await storageHealth(p, { schema: 'no such; schema', blockedAfterMs: -5 }).catch((e: unknown) => e);
    expect(isSagaboxError(err, 'INVALID_OPTIONS')).toBe(true);
    expect((err as { problems: string[] }).problems).toHaveLength(2);
  });

  it('names a snapshot held open as the oldest holder, calls vacuum blocked once it is old enough, and counts the dead tuples it keeps', async () => {
    const report = new pg.Client({ connectionString: db.url, application_name: 'nightly report' });
    await report.connect();
    try {
      await report.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await report.query('SELECT count(*) FROM sagabox.queues');
      const pid = (await report.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;

      const fresh = await storageHealth(p, { blockedAfterMs: 60_000 });
      expect(fresh.oldest).toMatchObject({ kind: 'backend', pid, application: 'nightly report', state: 'idle in transaction' });
      expect(fresh.vacuumBlocked).toBe(false);

      // Rows deleted while the snapshot is held stay as dead tuples, whatever vacuum does.
      await p.query(`INSERT INTO sagabox.queues (name) SELECT 'h' || g FROM generate_series(1, 500) g`);
      await p.query(`DELETE FROM sagabox.queues WHERE name LIKE 'h%'`);
      await p.query('VACUUM sagabox.queues');
      await sleep(300);
      const held = await waitFor('dead tuples counted', async () => {
        const h = await storageHealth(p, { blockedAfterMs: 250 });
        return (h.tables.find((t) => t.table === 'queues')?.deadTuples ?? 0) >= 500 ? h : undefined;
      });
      expect(held.vacuumBlocked).toBe(true);
      expect(held.oldest?.pid).toBe(pid);
      expect(held.oldest?.ageMs).toBeGreaterThanOrEqual(250);
      expect(held.oldest?.xminAge).toBeGreaterThanOrEqual(2);
      // The inbox is one entry, its partitions summed.
      const inbox = held.tables.find((t) => t.table === 'inbox');
      expect(inbox?.partitions).toBeGreaterThanOrEqual(1);
      expect(held.tables.some((t) => t.table.startsWith('inbox_'))).toBe(false);

      const cli = await runCli(['storage', '--database-url', db.url]);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toContain(`backend pid ${pid} (nightly report, idle in transaction)`);
      expect(cli.stdout).toMatch(/queues[\s│]+[\d,]+[\s│]+[1-9][\d,]{2,}/);
    } finally {
      await report.query('ROLLBACK').catch(() => undefined);
      await report.end();
    }
    const after = await storageHealth(p, { blockedAfterMs: 250 });
    expect(after.vacuumBlocked).toBe(false);
    expect(after.oldest === null || after.oldest.application !== 'nightly report').toBe(true);
  });
});
