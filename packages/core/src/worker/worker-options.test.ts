import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '../shared/errors.js';
import { DEFAULT_HANDLER_TIMEOUT_MS, DEFAULT_LEASE_MS, resolveWorkerOptions, type WorkerOptions } from './worker-options.js';

// A pool is never connected here: resolving options does no I/O.
const pool = new pg.Pool({ max: 1 });
const handler = (): void => {};

function problemsOf(options: unknown): readonly string[] {
  try {
    resolveWorkerOptions(options as WorkerOptions);
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidOptionsError);
    expect((err as InvalidOptionsError).code).toBe('INVALID_OPTIONS');
    return (err as InvalidOptionsError).problems;
  }
  throw new Error('expected INVALID_OPTIONS');
}

describe('resolveWorkerOptions', () => {
  it('fills in the defaults, the handler timeout below the lease', () => {
    const o = resolveWorkerOptions({ pool, queue: 'billing', handler });
    expect(o).toMatchObject({ queue: 'billing', consumer: 'billing', schema: 'sagabox', inbox: true, listen: true, trickleVacuum: false, concurrency: 1, batchSize: 10 });
    expect(o.leaseMs).toBe(DEFAULT_LEASE_MS);
    expect(o.handlerTimeoutMs).toBe(DEFAULT_HANDLER_TIMEOUT_MS);
    expect(o.handlerTimeoutMs).toBeLessThan(o.leaseMs);
    expect(o.name).toMatch(/^worker-\d+-/);
    expect(o.maxBatchSize).toBe(400);
  });

  it('adapts batches only when batchSize is left to its default', () => {
    expect(resolveWorkerOptions({ pool, queue: 'q', handler, batchSize: 25 }).maxBatchSize).toBe(25);
    expect(resolveWorkerOptions({ pool, queue: 'q', handler, batchSize: 25, maxBatchSize: 200 }).maxBatchSize).toBe(200);
    expect(problemsOf({ pool, queue: 'q', handler, batchSize: 25, maxBatchSize: 20 })).toEqual(['maxBatchSize must be at least batchSize']);
  });

  it('derives the handler timeout from a given lease, and keeps a given timeout as is', () => {
    expect(resolveWorkerOptions({ pool, queue: 'q', handler, leaseMs: 6_000 }).handlerTimeoutMs).toBe(5_000);
    expect(resolveWorkerOptions({ pool, queue: 'q', handler, leaseMs: 6_000, handlerTimeoutMs: 60_000 }).handlerTimeoutMs).toBe(60_000);
  });

  it('refuses undefined and non-objects with INVALID_OPTIONS, not a TypeError', () => {
    for (const bad of [undefined, null, 42, 'worker']) {
      const problems = problemsOf(bad);
      expect(problems).toContain('options must be an object');
      expect(problems).toContain('pool must be a pg.Pool');
      expect(problems).toContain('handler must be a function');
    }
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({
      pool: {}, queue: 'bad queue!', handler: 'no', concurrency: 0, batchSize: 1.5, leaseMs: -1, handlerTimeoutMs: Number.NaN,
      stopTimeoutMs: -5, pollIntervalMs: 0, inbox: 'yes', listen: 1, trickleVacuum: 'no', consumer: '', name: '', retry: { maxAttempts: 0 },
      topics: {}, logger: console.log,
    });
    const expected = ['pool', 'handler', 'queue name', 'concurrency', 'batchSize', 'leaseMs', 'handlerTimeoutMs', 'stopTimeoutMs',
      'pollIntervalMs', 'inbox', 'listen', 'trickleVacuum', 'consumer', 'name', 'retry.maxAttempts', 'topics', 'logger'];
    for (const word of expected) expect(problems.some((p) => p.includes(word)), word).toBe(true);
    expect(problems).toHaveLength(expected.length);
  });
});
