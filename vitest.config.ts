import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const packages = fileURLToPath(new URL('./packages/', import.meta.url));

// The dashboard's end-to-end test needs a Chromium on the machine (Debian's package;
// no browser download), which a machine with only Node and npm lacks. It runs when
// asked for: SAGABOX_BROWSER_TESTS=1 (CI sets it in every pass), or `npm run test:browser`.
const browserTests = process.env.SAGABOX_BROWSER_TESTS === '1';

export default defineConfig({
  resolve: {
    // Tests run from source: every workspace package resolves to its src, not dist. A
    // package's root is src/index.ts, a subpath export '@sagabox/core/admin' is
    // src/admin.ts (the entry files sit at the top of each src folder).
    alias: [
      { find: /^@sagabox\/([a-z0-9-]+)$/, replacement: `${packages}$1/src/index.ts` },
      { find: /^@sagabox\/([a-z0-9-]+)\/([a-z0-9-]+)$/, replacement: `${packages}$1/src/$2.ts` },
    ],
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/src/**/*.test.ts'],
    exclude: ['**/node_modules/**', ...(browserTests ? [] : ['test/dashboard/browser.test.ts'])],
    globalSetup: ['./test/global-setup.ts'],
    pool: 'forks',
    // A limit for hung tests, not a speed check: a CLI test starts a Node process per
    // command (seconds each on a loaded 2-core machine, where such tests took close to a
    // minute), and fault tests run several processes at once. Tests that wait for
    // something wait for it with their own deadline.
    testTimeout: 240_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
