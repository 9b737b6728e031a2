import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..', '..');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|mts)$/.test(name) && !/\.test(-d)?\.ts$/.test(name) ? [path] : [];
  });
}

describe('docs/errors.md', () => {
  const documented = new Set([...readFileSync(join(root, 'docs', 'errors.md'), 'utf8').matchAll(/^### `([A-Z_]+)`$/gm)].map((m) => m[1]!));
  const errorsTs = readFileSync(join(root, 'packages', 'core', 'src', 'shared', 'errors.ts'), 'utf8');
  const union = errorsTs.slice(errorsTs.indexOf('export type SagaboxErrorCode'), errorsTs.indexOf(';', errorsTs.indexOf('export type SagaboxErrorCode')));
  const declared = new Set([...union.matchAll(/'([A-Z_]+)'/g)].map((m) => m[1]!));

  it('documents every code of SagaboxErrorCode, and no other', () => {
    expect(declared.size).toBeGreaterThan(10);
    expect([...declared].filter((c) => !documented.has(c))).toEqual([]);
    expect([...documented].filter((c) => !declared.has(c))).toEqual([]);
  });

  it('documents every code used in packages/*/src', () => {
    const used = new Set<string>();
    for (const pkg of readdirSync(join(root, 'packages'))) {
      const src = join(root, 'packages', pkg, 'src');
      try {
        statSync(src);
      } catch {
        continue;
      }
      for (const file of sourceFiles(src)) {
        const text = readFileSync(file, 'utf8');
        // new SagaboxError('CODE', ...), a conditional code, isSagaboxError(err, 'CODE'), { code: 'CODE' }
        for (const m of text.matchAll(/SagaboxError\(\s*(?:[^,()]*\?\s*)?'([A-Z][A-Z_]+)'(?:\s*:\s*'([A-Z][A-Z_]+)')?/g)) {
          used.add(m[1]!);
          if (m[2]) used.add(m[2]);
        }
        for (const m of text.matchAll(/isSagaboxError\([^,()]+,\s*'([A-Z][A-Z_]+)'\)/g)) used.add(m[1]!);
        for (const m of text.matchAll(/\bcode: '([A-Z][A-Z_]+)'/g)) used.add(m[1]!);
      }
    }
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((c) => !documented.has(c)).sort()).toEqual([]);
  });
});
