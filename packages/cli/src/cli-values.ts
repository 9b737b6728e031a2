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

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses a duration flag into milliseconds: a plain number is milliseconds, or a number
 * with one unit of `ms`, `s`, `m`, `h`, `d` (`90s`, `15m`, `1.5h`, `7d`). Throws a
 * {@link UsageError} naming the flag and the accepted range (exit code 2).
 *
 * @param min - smallest accepted value, in milliseconds; default 0.
 * @param max - largest accepted value, in milliseconds; default 10 years.
 * @example parseDurationFlag('--older-than', '7d') // 604800000
 */
export function parseDurationFlag(name: string, value: string, min = 0, max = 10 * 365 * 86_400_000): number {
  // Stricter than general-purpose parsers on purpose: no spaces, words or signs, so a
  // typo is an error rather than a surprising duration.
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim());
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS_MS[m[2] ?? 'ms']!) : NaN;
  if (!Number.isFinite(ms) || ms < min || ms > max) {
    throw new UsageError(`${name} must be a duration from ${formatDuration(min)} to ${formatDuration(max)}: milliseconds, or a number with ms, s, m, h or d (90s, 15m, 7d); got ${JSON.stringify(value)}`);
  }
  return ms;
}

/** Formats milliseconds in the largest unit that divides them: `90s`, `15m`, `7d`, `250ms`. */
export function formatDuration(ms: number): string {
  for (const unit of ['d', 'h', 'm', 's'] as const) {
    const size = DURATION_UNITS_MS[unit]!;
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
