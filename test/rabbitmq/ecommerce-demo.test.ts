import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The built demo; `npm test` builds it first. */
const DEMO = fileURLToPath(new URL('../../examples/ecommerce/dist/main.js', import.meta.url));

describe('the e-commerce example with the shipping service behind RabbitMQ (npm run demo -- --broker rabbitmq)', () => {
  it('with chaos, every order ends consistent, the shipping commands and replies having crossed RabbitMQ', async () => {
    const prefix = `ecommerce_rmq_${randomBytes(4).toString('hex')}`;
    const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
      execFile(
        process.execPath,
        [DEMO, '--broker', 'rabbitmq', '--orders', '40', '--chaos', '--seed', '11', '--json', '--db-prefix', prefix, '--timeout-s', '400'],
        { env: { ...process.env, DATABASE_URL: process.env.SAGABOX_TEST_DATABASE_URL }, timeout: 430_000, maxBuffer: 16 * 1024 * 1024 },
        (error, out, err) => {
          if (error && typeof error.code !== 'number') return reject(Object.assign(error, { stderr: err }));
          resolve({ code: error ? (error.code as number) : 0, stdout: out, stderr: err });
        },
      );
    });
    const last = stdout.trim().split('\n').at(-1) ?? '';
    expect(last.startsWith('{'), `no JSON summary on stdout; stderr:\n${stderr}`).toBe(true);
    const summary = JSON.parse(last) as {
      broker: string; completed: number; compensated: number; failed: number; running: number; consistent: boolean;
      checks: { ok: boolean }[]; chaos: { kills: Record<string, number> };
    };
    expect(stderr).toMatch(/broker: RabbitMQ carries the shipping service's commands and replies/);
    expect(summary.broker).toBe('rabbitmq');
    expect(summary.checks.filter((c) => !c.ok), stderr).toEqual([]);
    expect(summary.consistent).toBe(true);
    expect(code).toBe(0);
    expect(summary.completed + summary.compensated).toBe(40);
    expect(summary.failed + summary.running).toBe(0);
    // Orders that reached the ship step crossed RabbitMQ both ways.
    expect(summary.completed).toBeGreaterThan(0);
    expect(Object.values(summary.chaos.kills).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 450_000);
});
