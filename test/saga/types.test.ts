import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('saga definition types', () => {
  // packages/saga/src/define-saga.test-d.ts holds `@ts-expect-error` on a non-exhaustive
  // reply match (and other misuses); tsc fails on any of them that is not an error.
  it('a non-exhaustive reply match does not compile (tsc on the type tests passes)', async () => {
    const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
      execFile(
        process.execPath,
        [`${root}node_modules/typescript/bin/tsc`, '-p', `${root}packages/saga/tsconfig.typecheck.json`],
        { cwd: root },
        (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    expect(result.out).toBe('');
    expect(result.code).toBe(0);
  });
});
