import { describe, expect, it } from 'vitest';
import { silentLogger } from '@sagabox/core';
import { createListener } from '../../packages/core/src/shared/listener.js';
import { useDatabase } from '../support/test-pool.js';
import { waitFor } from '../support/wait-for.js';

const { pool } = await useDatabase();
const p = pool(4);

describe('createListener', () => {
  it('replaces a LISTEN session that stopped receiving, then notifications flow again', async () => {
    const received: string[] = [];
    let reconnects = 0;
    const channel = 'sagabox_test.listener';
    const listener = createListener({
      connection: p.options,
      pool: p,
      channels: [channel],
      onNotify: (_c, payload) => received.push(payload),
      onReconnect: () => reconnects++,
      logger: silentLogger,
      verifyIntervalMs: 100,
      verifyTimeoutMs: 300,
    });
    await listener.start();
    try {
      await p.query('SELECT pg_notify($1, $2)', [channel, 'before']);
      await waitFor('first notification', () => received.includes('before'), 5_000);

      // Kill the LISTEN session from the server side, as a restart or a proxy would.
      const { rowCount } = await p.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'LISTEN%'`,
      );
      expect(rowCount).toBeGreaterThan(0);
      await waitFor('reconnected', () => reconnects > 0, 10_000);
      await waitFor('notifications flow again', async () => {
        await p.query('SELECT pg_notify($1, $2)', [channel, 'after']);
        return received.includes('after');
      }, 10_000, 100);
    } finally {
      await listener.stop();
    }
    // stop() closed the session: nothing listens any more.
    const { rows } = await p.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%' AND state = 'idle'`);
    expect(rows[0].n).toBe(0);
  });
});
