import { describe, expect, it } from 'vitest';
import { useDatabase } from '../support/test-pool.js';
import { runCli } from '../support/run-cli.js';

const { db, pool } = await useDatabase();
const p = pool(2);
const url = ['--database-url', db.url];

describe('sagabox storage maintain', () => {
  it('creates the partitions, prints what it did (--json: what maintainStorage returns), exits 2 on a bad duration', async () => {
    const text = await runCli(['storage', 'maintain', '--dead-letters-retention', '30d', ...url]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^deadLetters: created 3, dropped 0, purged 0 row\(s\) one by one$/m);
    const json = await runCli(['storage', 'maintain', '--json', '--sagas-retention', '90d', '--inbox-retention', '7d', ...url]);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout);
    expect(result.sagas).toEqual({ created: [], dropped: [], kept: 0, purgedOther: 0 });
    expect(result.skipped).toBe(0);
    const bad = await runCli(['storage', 'maintain', '--sagas-retention', '1 week', ...url]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--sagas-retention must be a duration/);
  });

  it('exits 3 when another process keeps maintaining, so a cron job sees the run did not happen', async () => {
    const holder = await p.connect();
    try {
      await holder.query(`SELECT pg_advisory_lock(hashtext('sagabox storage maintenance sagabox'))`);
      const run = await runCli(['storage', 'maintain', '--json', ...url]);
      expect(run.code).toBe(3);
      expect(JSON.parse(run.stdout).skipped).toBe(1);
      expect(run.stderr).toMatch(/step\(s\) skipped/);
    } finally {
      await holder.query(`SELECT pg_advisory_unlock_all()`);
      holder.release();
    }
  }, 60_000);
});
