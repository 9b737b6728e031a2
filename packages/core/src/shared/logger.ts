/**
 * The logging interface sagabox components take: a subset of pino's, so a pino
 * logger fits as it is. Object first, then message; sagabox logs ids, never payloads.
 */
export interface Logger {
  /** A logger that adds `bindings` to every line. */
  child(bindings: Record<string, unknown>): Logger;
  /** Per-batch detail. */
  debug(obj: object, msg?: string): void;
  /** Lifecycle: started, stopped. */
  info(obj: object, msg?: string): void;
  /** Degraded: retries, unreachable database, held messages. */
  warn(obj: object, msg?: string): void;
  /** Final failures: dead letters, unexpected errors. */
  error(obj: object, msg?: string): void;
}

const noop = (): void => {};

/** A logger that drops everything; the default when no `logger` option is given. */
export const silentLogger: Logger = {
  child: () => silentLogger,
  debug: noop,
  info: noop,
  warn: noop,
  error: noop,
};
