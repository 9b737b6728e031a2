import { describe, expect, it } from 'vitest';
import { nextClaimSize, SLOW_BATCH_MS } from './claimer.js';

describe('nextClaimSize', () => {
  const base = 10;
  const max = 100;
  it('doubles after a full claim handled quickly, up to the maximum', () => {
    const sizes = [10];
    for (let i = 0; i < 5; i++) sizes.push(nextClaimSize({ size: sizes.at(-1)!, claimed: sizes.at(-1)!, elapsedMs: 20, base, max }));
    expect(sizes).toEqual([10, 20, 40, 80, 100, 100]);
  });

  it('goes back to the base size after a short claim, and halves after a slow batch', () => {
    expect(nextClaimSize({ size: 80, claimed: 79, elapsedMs: 20, base, max })).toBe(10);
    expect(nextClaimSize({ size: 80, claimed: 0, elapsedMs: 0, base, max })).toBe(10);
    expect(nextClaimSize({ size: 80, claimed: 80, elapsedMs: SLOW_BATCH_MS + 1, base, max })).toBe(40);
    expect(nextClaimSize({ size: 10, claimed: 10, elapsedMs: SLOW_BATCH_MS + 1, base, max })).toBe(10);
  });

  it('keeps fixed batches fixed', () => {
    expect(nextClaimSize({ size: 10, claimed: 10, elapsedMs: 1, base: 10, max: 10 })).toBe(10);
  });
});
