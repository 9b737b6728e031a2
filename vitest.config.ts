import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (pkg: string): string => fileURLToPath(new URL(`./packages/${pkg}/src/index.ts`, import.meta.url));

// The dashboard's end-to-end test needs a Chromium on the machine (Debian's package;
// no browser download), which a machine with only Node and npm lacks. It runs when
// asked for: SAGABOX_BROWSER_TESTS=1 (CI sets it in every pass), or `npm run test:browser`.
const browserTests = process.env.SAGABOX_BROWSER_TESTS === '1';

export default defineConfig({
  resolve: {
    // Tests run from source: the workspace packages resolve to their src, not dist.
    alias: {
      '@sagabox/core': src('core'),
      '@sagabox/saga': src('saga'),
      '@sagabox/rabbitmq': src('rabbitmq'),
      '@sagabox/nats': src('nats'),
      '@sagabox/testing': src('testing'),
      '@sagabox/telemetry': src('telemetry'),
      '@sagabox/dashboard': src('dashboard'),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...(browserTests ? [] : ['test/dashboard/browser.test.ts'])],
    globalSetup: ['./test/global-setup.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
