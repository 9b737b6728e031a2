import { UsageError } from './usage-error.js';

/**
 * Parses an integer flag value, or throws a {@link UsageError} naming the flag and the
 * accepted range (exit code 2).
 */
export function parseIntFlag(name: string, value: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new UsageError(`${name} must be ${range}`);
  }
  return n;
}

/** Resolves on the first SIGINT or SIGTERM: how long-running commands (relay, dashboard, metrics) wait. */
export function untilStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}
