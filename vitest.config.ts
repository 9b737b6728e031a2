import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string): string => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    // Tests run from source: the workspace packages resolve to their src, not dist.
    alias: {
      '@sagabox/core': src('core'),
      '@sagabox/saga': src('saga'),
      '@sagabox/testing': src('testing'),
      '@sagabox/telemetry': src('telemetry'),
      '@sagabox/dashboard': src('dashboard'),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
