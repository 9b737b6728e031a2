import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from './vitest.config.js';

// `npm run test:shake`: the test files with property tests, each property run
// SAGABOX_SHAKE (default 10) times as often as in `npm test`. CI draws new inputs on
// every run, so a generator that can make an input the property does not hold for
// shows up as a rare red run; this finds it before then.
const root = fileURLToPath(new URL('.', import.meta.url));
const testFiles = (dir: string): string[] =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'node_modules' || e.name === 'dist' ? [] : testFiles(join(dir, e.name))) : e.name.endsWith('.test.ts') ? [join(dir, e.name)] : [],
  );
const properties = ['test', 'packages'].flatMap(testFiles).filter((f) => readFileSync(join(root, f), 'utf8').includes("from 'fast-check'"));

const alias = base.resolve?.alias;
export default defineConfig({
  ...base,
  resolve: {
    ...base.resolve,
    alias: [
      ...(Array.isArray(alias) ? alias : []),
      { find: /^fast-check$/, replacement: join(root, 'test/support/fast-check-shake.ts') },
      { find: /^fast-check-real$/, replacement: fileURLToPath(import.meta.resolve('fast-check')) },
    ],
  },
  test: { ...base.test, include: properties },
});
