import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

/** The built demo; `npm test` builds it first. */
const DEMO = fileURLToPath(new URL('../../examples/ecommerce/dist/main.js', import.meta.url));

interface Summary {
  orders: number;
  completed: number;
  compensated: number;
  failed: number;
  running: number;
  reasons: Record<string, number>;
  chaos: { enabled: boolean; kills: Record<string, number> };
  checks: { name: string; ok: boolean; detail: string; examples: string[] }[];
  consistent: boolean;
}

function runDemo(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [DEMO, ...args], { env, timeout: 430_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') return reject(Object.assign(error, { stderr }));
      resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
    });
  });
}

describe('the e-commerce example (npm run demo)', () => {
  it('with chaos (services SIGKILLed and restarted during the burst), every order ends consistent', async () => {
    expect(existsSync(DEMO), `${DEMO} is missing: run npm run build first`).toBe(true);
    const serverUrl = process.env.SAGABOX_TEST_DATABASE_URL;
    expect(serverUrl, 'the vitest global setup sets SAGABOX_TEST_DATABASE_URL').toBeTruthy();
    // Own database names, so that this test never touches a demo someone runs on the same server.
    const prefix = `ecommerce_test_${randomBytes(4).toString('hex')}`;
    const { code, stdout, stderr } = await runDemo(
      ['--orders', '60', '--chaos', '--seed', '7', '--json', '--db-prefix', prefix, '--timeout-s', '400'],
      { ...process.env, DATABASE_URL: serverUrl },
    );
    const last = stdout.trim().split('\n').at(-1) ?? '';
    expect(last.startsWith('{'), `no JSON summary on stdout; stderr:\n${stderr}`).toBe(true);
    const summary = JSON.parse(last) as Summary;

    expect(summary.checks.filter((c) => !c.ok), stderr).toEqual([]);
    expect(summary.consistent).toBe(true);
    expect(code).toBe(0);
    expect(summary.completed + summary.compensated).toBe(60);
    expect(summary.failed + summary.running).toBe(0);
    // The burst has orders built to fail (limited stock, declined card, unsupported region)...
    expect(summary.compensated).toBeGreaterThan(0);
    expect(summary.completed).toBeGreaterThan(0);
    // ...and chaos really killed services while it ran.
    expect(summary.chaos.enabled).toBe(true);
    expect(Object.values(summary.chaos.kills).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
  }, 450_000);
});
