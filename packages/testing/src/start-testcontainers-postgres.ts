import type { RunningPostgres } from './start-embedded-postgres.js';

/** The image {@link startTestcontainersPostgres} runs unless told otherwise. */
export const DEFAULT_TEST_PG_IMAGE = 'postgres:17-alpine';

// The module name sits in a variable so that TypeScript and bundlers do not insist on
// the optional peer dependency being installed.
const TESTCONTAINERS_POSTGRESQL = '@testcontainers/postgresql';

interface StartedContainer {
  getConnectionUri(): string;
  stop(): Promise<unknown>;
}

/**
 * Starts PostgreSQL in a container with Testcontainers (the optional peer dependency
 * `@testcontainers/postgresql`). Call only when a container runtime answers.
 *
 * @param image - Docker image, default {@link DEFAULT_TEST_PG_IMAGE}.
 */
export async function startTestcontainersPostgres(image: string = DEFAULT_TEST_PG_IMAGE): Promise<RunningPostgres> {
  const { PostgreSqlContainer } = (await import(TESTCONTAINERS_POSTGRESQL)) as {
    PostgreSqlContainer: new (image: string) => {
      withCommand(command: string[]): { start(): Promise<StartedContainer> };
    };
  };
  const container = await new PostgreSqlContainer(image)
    .withCommand(['postgres', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'max_connections=300'])
    .start();
  let stopped: Promise<void> | undefined;
  return {
    url: container.getConnectionUri(),
    stop: () => (stopped ??= container.stop().then(() => undefined)),
  };
}
