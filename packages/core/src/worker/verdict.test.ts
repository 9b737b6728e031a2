import { describe, expect, it } from 'vitest';
import { DEFAULT_RETRY_POLICY } from '../shared/retry-policy.js';
import { Outcome } from './handler-outcome.js';
import { DEFAULT_DEAD_LETTER_REASON, describeFailure, failureVerdict, MAX_ERROR_TEXT_LENGTH, outcomeVerdict } from './verdict.js';

const retry = { ...DEFAULT_RETRY_POLICY, maxAttempts: 3, jitter: false };

describe('describeFailure', () => {
  it('gives an Error its stack, which names it and carries its message, and its cause', () => {
    const text = describeFailure(new TypeError('bad card', { cause: new Error('gateway down') }));
    expect(text).toMatch(/^TypeError: bad card\n\s+at /);
    expect(text).toMatch(/caused by: Error: gateway down/);
  });

  it('describes values that cannot be stringified without throwing', () => {
    const noProto = Object.create(null) as object;
    expect(() => String(noProto)).toThrow();
    expect(describeFailure(noProto)).toBe('thrown object without a prototype {}');
    const nasty = { toString() { throw new Error('no'); }, get x() { throw new Error('no'); } };
    expect(describeFailure(nasty)).toMatch(/^thrown Object object/);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(describeFailure(proxy)).toMatch(/cannot be described|thrown/);
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(describeFailure(cyclic)).toMatch(/thrown Object object/);
    expect(describeFailure(undefined)).toBe('undefined');
    expect(describeFailure(42)).toBe('42');
    expect(describeFailure({ code: 'E1' })).toBe('thrown Object object: {"code":"E1"}');
    const weird = new Error('x');
    Object.defineProperty(weird, 'message', { get() { throw new Error('boom'); } });
    expect(typeof describeFailure(weird)).toBe('string');
  });

  it('bounds the text and removes NUL, which a text column refuses', () => {
    const text = describeFailure('a\0b'.repeat(10_000));
    expect(text.length).toBeLessThanOrEqual(MAX_ERROR_TEXT_LENGTH);
    expect(text).not.toContain('\0');
    expect(text.endsWith('…')).toBe(true);
  });
});

describe('verdicts', () => {
  it('retries a failure with backoff until the last attempt, then dead-letters it with its reason', () => {
    expect(failureVerdict(1, 'e', retry)).toEqual({ kind: 'retry', delayMs: 1_000, error: 'e' });
    expect(failureVerdict(3, 'e', retry, 'timeout')).toEqual({ kind: 'dead', reason: 'timeout', error: 'e' });
  });

  it('gives deadLetter(undefined) a default reason', () => {
    expect(outcomeVerdict(1, Outcome.deadLetter(undefined as unknown as string), retry)).toEqual({ kind: 'dead', reason: 'non_retryable', error: DEFAULT_DEAD_LETTER_REASON });
    expect(outcomeVerdict(1, { kind: 'dead-letter', reason: Object.create(null) }, retry)).toMatchObject({ kind: 'dead', error: 'thrown object without a prototype {}' });
  });

  it('refuses a retry delay that is not a finite number from 0 to a year, as a failure with INVALID_OUTCOME', () => {
    for (const delayMs of [Number.NaN, Number.POSITIVE_INFINITY, -1, 1e300, '5' as unknown as number]) {
      const v = outcomeVerdict(1, Outcome.retry({ delayMs }), retry);
      expect(v).toMatchObject({ kind: 'retry', delayMs: 1_000 });
      expect((v as { error: string }).error).toMatch(/INVALID_OUTCOME|delayMs must be a finite number/);
    }
    expect(outcomeVerdict(3, Outcome.retry({ delayMs: Number.NaN }), retry)).toMatchObject({ kind: 'dead', reason: 'failed' });
    expect(outcomeVerdict(1, Outcome.retry({ delayMs: 0, reason: 'busy' }), retry)).toEqual({ kind: 'retry', delayMs: 0, error: 'busy' });
    expect(outcomeVerdict(3, Outcome.retry({ delayMs: 10 }), retry)).toEqual({ kind: 'dead', reason: 'failed', error: 'handler asked to retry' });
  });
});
