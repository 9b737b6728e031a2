import { InvalidOptionsError } from './errors.js';
import { describeValue } from './describe-value.js';

/** How failed work is retried: exponential backoff with full jitter, capped. */
export interface RetryPolicy {
  /** Attempts before the message is dead-lettered (the first try counts). Default 10 (worker) / 20 (relay). */
  maxAttempts: number;
  /** Delay before the second attempt, in milliseconds. Default 1,000. */
  baseDelayMs: number;
  /** Largest delay, in milliseconds. Default 300,000 (5 minutes). */
  maxDelayMs: number;
  /** Randomise delays (full jitter between half and all of the computed delay). Default true. */
  jitter: boolean;
}

/** Defaults for {@link RetryPolicy}. */
export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 10, baseDelayMs: 1_000, maxDelayMs: 300_000, jitter: true };

/** Completes a partial retry policy with defaults and checks it; returns problems instead of throwing. */
export function resolveRetryPolicy(input: Partial<RetryPolicy> | undefined, defaults: RetryPolicy, problems: string[]): RetryPolicy {
  if (input !== undefined && (typeof input !== 'object' || input === null)) {
    problems.push('retry must be an object');
    return defaults;
  }
  const p = { ...defaults, ...(input ?? {}) };
  const num = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (!Number.isInteger(p.maxAttempts) || p.maxAttempts < 1 || p.maxAttempts > 1_000_000) problems.push('retry.maxAttempts must be an integer from 1 to 1,000,000');
  if (!num(p.baseDelayMs) || p.baseDelayMs < 0) problems.push('retry.baseDelayMs must be a non-negative number');
  if (!num(p.maxDelayMs) || !(p.maxDelayMs >= (num(p.baseDelayMs) ? p.baseDelayMs : 0))) problems.push('retry.maxDelayMs must be a number >= retry.baseDelayMs');
  if (typeof p.jitter !== 'boolean') problems.push('retry.jitter must be a boolean');
  return p;
}

/**
 * Delay before the next attempt after `attempts` failed ones, in milliseconds.
 * @example backoffMs({ ...DEFAULT_RETRY_POLICY, jitter: false }, 3) // 4000
 */
export function backoffMs(policy: RetryPolicy, attempts: number): number {
  const exp = policy.baseDelayMs * 2 ** Math.max(0, attempts - 1);
  const capped = Math.min(policy.maxDelayMs, exp);
  return policy.jitter ? capped / 2 + Math.random() * (capped / 2) : capped;
}

/** Throws {@link InvalidOptionsError} when `problems` is not empty. */
export function assertNoProblems(what: string, problems: string[]): void {
  if (problems.length > 0) throw new InvalidOptionsError(what, problems);
}

/** Appends a problem when `value` is given and is not an integer in [min, max]. */
export function checkInt(problems: string[], name: string, value: unknown, min: number, max: number): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`${name} must be an integer from ${min} to ${max}, got ${describeValue(value)}`);
  }
}

/**
 * The largest age an "older than" filter accepts (1,000 years): `now() - age` must stay
 * inside PostgreSQL's timestamp range, or the statement fails and aborts the caller's
 * transaction.
 */
export const MAX_AGE_FILTER_MS = 1_000 * 365 * 86_400_000;
