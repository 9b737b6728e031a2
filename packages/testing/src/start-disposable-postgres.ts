import type { Logger } from '@sagabox/core';
import { findContainerRuntime } from './container-runtime-answers.js';
import { firstLine } from './first-line.js';
import { freePort } from './free-port.js';
import { startEmbeddedPostgres, type RestartablePostgres } from './start-embedded-postgres.js';
import { DEFAULT_TEST_PG_IMAGE, startTestcontainersPostgres } from './start-testcontainers-postgres.js';

/** The backends that can start a private server: a URL's server is shared and cannot be restarted. */
export type DisposableBackend = 'testcontainers' | 'embedded';

/** A private PostgreSQL server for one test file, which it may restart or stop at will. */
export interface DisposablePostgres extends RestartablePostgres {
  /** Which backend runs it. */
  readonly backend: DisposableBackend;
}

/** Options of {@link startDisposablePostgres}. */
export interface StartDisposablePostgresOptions {
  /**
   * Backend to use. Default: `SAGABOX_TEST_BACKEND` from `env` when set; otherwise
   * Testcontainers when a container runtime answers, else embedded-postgres — the
   * choice {@link startPostgres} makes when no URL is given.
   */
  backend?: DisposableBackend;
  /**
   * Environment to read, default `process.env`: `SAGABOX_TEST_BACKEND`, `SAGABOX_TEST_PG_IMAGE`
   * (default {@link DEFAULT_TEST_PG_IMAGE}) and what Testcontainers reads (`DOCKER_HOST`, ...).
   */
  env?: Record<string, string | undefined>;
  /** Receives the embedded server's output at `debug`. Default: silent. */
  logger?: Logger;
}

/**
 * Starts a PostgreSQL server of its own for a fault test — one that it can restart or
 * stop without disturbing the other test files, which share the run's server. It is
 * empty (a `postgres` database, no sagabox schema): migrate it with `migrateUp`.
 *
 * On Testcontainers `restart()` and `stop()` are the container's own, and the container
 * publishes PostgreSQL on a fixed host port so that `url` stays valid across restarts;
 * on embedded-postgres the server process is shut down and started again on the same
 * data directory and port. Either way clients reconnect to the same `url`.
 *
 * @example
 * const server = await startDisposablePostgres();
 * afterAll(() => server.stop());
 * await migrateUp({ connectionString: server.url });
 * // ... start relays and workers on server.url ...
 * await server.restart(); // every session is cut; the components must reconnect
 */
export async function startDisposablePostgres(options: StartDisposablePostgresOptions = {}): Promise<DisposablePostgres> {
  const env = options.env ?? process.env;
  const chosen = options.backend ?? forcedBackend(env);
  const dockerHost = chosen === undefined ? await findContainerRuntime(env) : undefined;
  if (chosen === 'testcontainers' || (chosen === undefined && dockerHost !== undefined)) {
    const image = nonEmpty(env.SAGABOX_TEST_PG_IMAGE) ?? DEFAULT_TEST_PG_IMAGE;
    // The port may be taken between freePort() and the container's start; the start
    // then fails, so try a few ports before giving up.
    for (let attempt = 1; ; attempt++) {
      const hostPort = await freePort();
      try {
        return { ...(await startTestcontainersPostgres(image, { hostPort, ...(dockerHost ? { dockerHost } : {}) })), backend: 'testcontainers' };
      } catch (err) {
        if (attempt < 3 && /address already in use|port is already allocated/i.test(String(err))) continue;
        // Chosen, not asked for: fall back to embedded-postgres, as startPostgres does.
        if (chosen !== undefined) throw err;
        process.stderr.write(`sagabox disposable postgres: Testcontainers on ${dockerHost} failed (${firstLine(err)}); using embedded-postgres\n`);
        break;
      }
    }
  }
  const quiet: Logger = options.logger ?? { child: () => quiet, debug() {}, info() {}, warn() {}, error() {} };
  return { ...(await startEmbeddedPostgres({ logger: quiet.child({ component: 'embedded-postgres' }) })), backend: 'embedded' };
}

function forcedBackend(env: Record<string, string | undefined>): DisposableBackend | undefined {
  const forced = nonEmpty(env.SAGABOX_TEST_BACKEND);
  if (forced !== undefined && forced !== 'testcontainers' && forced !== 'embedded') {
    throw new Error(`SAGABOX_TEST_BACKEND must be "testcontainers" or "embedded", not ${JSON.stringify(forced)}`);
  }
  return forced;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value;
}
