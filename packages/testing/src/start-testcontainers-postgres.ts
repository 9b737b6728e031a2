import type { findContainerRuntime } from './container-runtime-answers.js';
import type { RestartablePostgres } from './start-embedded-postgres.js';

/** The image {@link startTestcontainersPostgres} runs unless told otherwise. */
export const DEFAULT_TEST_PG_IMAGE = 'postgres:17-alpine';

/** How long a container restart waits for PostgreSQL's fast shutdown before killing it, in milliseconds. */
export const DEFAULT_CONTAINER_STOP_TIMEOUT_MS = 10_000;

// The module name sits in a variable so that TypeScript and bundlers do not insist on
// the optional peer dependency being installed.
const TESTCONTAINERS_POSTGRESQL = '@testcontainers/postgresql';

/** Options of {@link startTestcontainersPostgres}. */
export interface StartTestcontainersPostgresOptions {
  /**
   * Host port to publish PostgreSQL on. Default: one the engine picks. A fixed port
   * matters for restarts: Docker may publish a restarted container on a new random
   * port, which would change the URL under the clients' feet.
   */
  hostPort?: number;
  /**
   * The engine to use, as a `DOCKER_HOST` value (see {@link findContainerRuntime}).
   * Testcontainers reads `process.env.DOCKER_HOST`; this sets it when it is unset.
   */
  dockerHost?: string;
}

/** The part of the Testcontainers API used here; the same in testcontainers 11.x and 12.x. */
interface StartedContainer {
  getConnectionUri(): string;
  restart(options?: { timeout?: number }): Promise<void>;
  stop(options?: { timeout?: number }): Promise<unknown>;
}

interface ContainerBuilder {
  withCommand(command: string[]): ContainerBuilder;
  withExposedPorts(...ports: Array<number | { container: number; host: number }>): ContainerBuilder;
  start(): Promise<StartedContainer>;
}

/**
 * Starts PostgreSQL in a container with Testcontainers (the optional peer dependency
 * `@testcontainers/postgresql`, 11.x on Node 20, 12.x on Node ≥ 22.22). Call only
 * when a container runtime answers (see {@link containerRuntimeAnswers}).
 *
 * `restart()` uses the container's own restart (data kept, the image's stop signal
 * first, a kill after {@link DEFAULT_CONTAINER_STOP_TIMEOUT_MS}); give `hostPort` so
 * the URL stays the same across it.
 *
 * @param image - Docker image, default {@link DEFAULT_TEST_PG_IMAGE}.
 * @example
 * const pg = await startTestcontainersPostgres('postgres:15', { hostPort: 55432 });
 * await pg.restart(); // same pg.url afterwards
 * await pg.stop();
 */
export async function startTestcontainersPostgres(
  image: string = DEFAULT_TEST_PG_IMAGE,
  options: StartTestcontainersPostgresOptions = {},
): Promise<RestartablePostgres> {
  if (options.dockerHost !== undefined && !process.env.DOCKER_HOST) process.env.DOCKER_HOST = options.dockerHost;
  const { PostgreSqlContainer } = await loadTestcontainers();
  let builder = new PostgreSqlContainer(image).withCommand([
    'postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=300',
  ]);
  // PostgreSqlContainer already exposes 5432 on a random host port; a second entry
  // for the same container port replaces that binding with the fixed one.
  if (options.hostPort !== undefined) builder = builder.withExposedPorts({ container: 5432, host: options.hostPort });
  const container = await builder.start();
  const url = container.getConnectionUri();

  let stopped: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;
  return {
    url,
    restart: () => {
      if (stopped) return Promise.reject(new Error('testcontainers postgres: restart() after stop()'));
      restarting ??= container.restart({ timeout: DEFAULT_CONTAINER_STOP_TIMEOUT_MS }).finally(() => {
        restarting = undefined;
      });
      return restarting;
    },
    stop: () =>
      (stopped ??= (async () => {
        await restarting?.catch(() => undefined);
        await container.stop();
      })()),
  };
}

async function loadTestcontainers(): Promise<{ PostgreSqlContainer: new (image: string) => ContainerBuilder }> {
  try {
    return (await import(TESTCONTAINERS_POSTGRESQL)) as { PostgreSqlContainer: new (image: string) => ContainerBuilder };
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
    throw new Error(
      `${missing ? 'the optional peer dependency @testcontainers/postgresql is not installed' : 'could not load @testcontainers/postgresql'}` +
        ` (Node ${process.versions.node}): install testcontainers and @testcontainers/postgresql` +
        ' (11.x on Node 20, 12.x on Node >= 22.22), or set SAGABOX_TEST_BACKEND=embedded',
      { cause: err },
    );
  }
}
