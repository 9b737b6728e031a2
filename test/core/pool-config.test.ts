import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { createRelay, createWorker } from '@sagabox/core';
import { captureLogger } from '../support/capture-logger.js';

const URL = 'postgres://nobody@127.0.0.1:1/none'; // never connected: the warning comes at construction

describe('pools given to sagabox', () => {
  it('a relay and a worker warn, once each, when the pool has no connectionTimeoutMillis', async () => {
    const log = captureLogger();
    const pool = new pg.Pool({ connectionString: URL });
    createRelay({ pool, routes: [{ topic: 'a.*', queue: 'a' }], logger: log });
    createWorker({ pool, queue: 'a', handler: async () => {}, logger: log });
    const warnings = log.lines.filter((l) => l.level === 'warn' && /connectionTimeoutMillis/.test(l.msg ?? ''));
    expect(warnings.map((w) => w.obj.component)).toEqual(['relay', 'worker']);
    expect(warnings[0]!.obj).toMatchObject({ connectionTimeoutMillis: 0 });
    await pool.end();
  });

  it('stay quiet when it has one', async () => {
    const log = captureLogger();
    const pool = new pg.Pool({ connectionString: URL, connectionTimeoutMillis: 5_000 });
    createRelay({ pool, routes: [{ topic: 'a.*', queue: 'a' }], logger: log });
    createWorker({ pool, queue: 'a', handler: async () => {}, logger: log });
    expect(log.lines.filter((l) => l.level === 'warn')).toEqual([]);
    await pool.end();
  });
});
