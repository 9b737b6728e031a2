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
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 30_000,
  },
});
