import type pg from 'pg';
import { databaseUnreachableError } from './database-unreachable.js';
import type { Logger } from './logger.js';
import { describeValue } from './describe-value.js';

/**
 * Default `waitForDatabaseMs` of relays, workers and orchestrators: how long `start()`
 * waits for an unreachable PostgreSQL before it rejects, in milliseconds. Infinity: a
 * process started while the database restarts comes up with it instead of exiting.
 */
export const DEFAULT_WAIT_FOR_DATABASE_MS = Number.POSITIVE_INFINITY;

const FIRST_RETRY_MS = 100;
const MAX_RETRY_MS = 5_000;

/** Options of {@link waitForDatabase}. */
export interface WaitForDatabaseOptions {
  /**
   * Longest wait, in milliseconds. Default {@link DEFAULT_WAIT_FOR_DATABASE_MS}
   * (forever); 0 fails at the first refused connection.
   */
  waitMs?: number;
  /** Where the retries are logged (`warn`, with the attempt and the next delay). */
  logger: Logger;
  /** Aborting it (the component is being stopped) ends the wait at once with the signal's reason. */
  signal?: AbortSignal;
}

// Connection-level failures: the server is down, restarting, starting up or refusing
// connections for now. Anything else (a wrong password, a missing database) will not
// mend itself by waiting, so it is thrown at once.
const TRANSIENT_NODE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'EPIPE']);
const TRANSIENT_SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);

/** True when `err` says the database cannot be reached for now (as opposed to a lasting refusal). */
export function isDatabaseUnreachable(err: unknown): boolean {
  const parts = err instanceof AggregateError ? err.errors : [err];
  return parts.some((e) => {
    if (typeof e !== 'object' || e === null) return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TRANSIENT_NODE_CODES.has(code) || TRANSIENT_SQLSTATES.has(code) || code.startsWith('08'))) return true;
    const message = (e as { message?: unknown }).message;
    // pg's own words when the server closes the socket during the handshake.
    return typeof message === 'string' && /Connection terminated|connection timeout/i.test(message);
  });
}

/**
 * Waits until `pool` answers a `SELECT 1`, retrying with backoff (100 ms doubling to
 * 5 s) and a `warn` line per attempt while the database cannot be reached. With
 * {@link retryWhileUnreachable}, the one place where relays, workers, orchestrators and
 * the CLI wait for PostgreSQL at start.
 *
 * @throws {SagaboxError} `DATABASE_UNREACHABLE` when `waitMs` runs out; the first
 * error that is not about reachability (authentication, a missing database) as it is.
 * @example await waitForDatabase(pool, { logger, waitMs: 60_000 });
 */
export async function waitForDatabase(pool: pg.Pool, options: WaitForDatabaseOptions): Promise<void> {
  await retryWhileUnreachable(() => pool.query('SELECT 1'), {
    ...options,
    target: (pool as { options?: { connectionString?: string } }).options?.connectionString,
  });
}

/**
 * Runs `attempt` until it does not fail with an unreachable-database error (see
 * {@link isDatabaseUnreachable}), with the backoff and log lines of
 * {@link waitForDatabase}; for start-up steps that open connections of their own
 * (a destination's pool or broker).
 * @throws {SagaboxError} `DATABASE_UNREACHABLE` when `waitMs` runs out; any other error at once.
 */
export async function retryWhileUnreachable<T>(
  attempt: () => Promise<T>,
  options: WaitForDatabaseOptions & { target?: string | undefined },
): Promise<T> {
  const waitMs = options.waitMs ?? DEFAULT_WAIT_FOR_DATABASE_MS;
  const started = Date.now();
  for (let n = 1; ; n++) {
    options.signal?.throwIfAborted();
    try {
      const result = await attempt();
      if (n > 1) options.logger.info({ attempts: n }, 'database reachable; starting');
      return result;
    } catch (err) {
      if (!isDatabaseUnreachable(err)) throw err;
      const error = databaseUnreachableError(err, options.target);
      const delayMs = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.min(n - 1, 16));
      if (Date.now() - started + delayMs > waitMs) throw error;
      options.logger.warn({ attempt: n, retryInMs: delayMs, error: error.message }, 'database unreachable at start; retrying');
      await sleep(delayMs, options.signal);
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Checks a `waitForDatabaseMs` option: 0 to Infinity milliseconds. */
export function checkWaitForDatabaseMs(problems: string[], value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) {
    problems.push(`waitForDatabaseMs must be a number of milliseconds from 0 to Infinity, got ${describeValue(value)}`);
  }
}
