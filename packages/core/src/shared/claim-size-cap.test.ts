import { afterEach, describe, expect, it, vi } from 'vitest';
import { CLAIM_SIZE_CAP_MS, claimSizeCap, createClaimSizeCap } from './claim-size-cap.js';
import { silentLogger } from './logger.js';

describe('claimSizeCap', () => {
  it('keeps the claims in flight together to half of what a short claim and the rows held show could be in flight', () => {
    // 1,000 keys: 300 free heads claimed while 700 rows were held.
    expect(claimSizeCap({ claimed: 300, held: 700, parallel: 10, floor: 10 })).toBe(50);
    // Every head in flight: the claim found nothing.
    expect(claimSizeCap({ claimed: 0, held: 4_000, parallel: 10, floor: 10 })).toBe(200);
    expect(claimSizeCap({ claimed: 100, held: 0, parallel: 2, floor: 10 })).toBe(25);
  });

  it('never goes below the floor', () => {
    expect(claimSizeCap({ claimed: 3, held: 40, parallel: 10, floor: 10 })).toBe(10);
    expect(claimSizeCap({ claimed: 0, held: 0, parallel: 4, floor: 25 })).toBe(25);
  });
});

describe('createClaimSizeCap', () => {
  afterEach(() => {
    vi.useRealTimers();
  });
  const make = () => createClaimSizeCap({ floor: 10, max: 200, parallel: 2, logger: silentLogger });

  it('caps claims after a large one came back short, for a while after the last such claim', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const cap = make();
    expect(cap.apply(200)).toBe(200);
    cap.learn(200, 100, 0); // 100 keys, nothing else in flight
    expect(cap.apply(200)).toBe(25);
    expect(cap.apply(20)).toBe(20);
    vi.advanceTimersByTime(CLAIM_SIZE_CAP_MS - 1);
    cap.learn(200, 0, 100); // every head in flight: renews the cap
    vi.advanceTimersByTime(CLAIM_SIZE_CAP_MS - 1);
    expect(cap.apply(200)).toBe(25);
    vi.advanceTimersByTime(1);
    expect(cap.apply(200)).toBe(200);
  });

  it('keeps one claim for every slot to what would bring the rows in flight to half of what a short claim showed, and to one slot at least', () => {
    vi.useFakeTimers({ toFake: ['performance'] });
    const cap = make();
    expect(cap.applyTogether(400, 200, 0)).toBe(400);
    expect(cap.room(10_000)).toBe(Number.POSITIVE_INFINITY);
    cap.learn(200, 10, 90); // 100 keys, 90 of them in flight: 50 together
    expect(cap.room(20)).toBe(30);
    expect(cap.room(90)).toBe(-40);
    expect(cap.applyTogether(400, 25, 20)).toBe(30);
    expect(cap.applyTogether(20, 25, 20)).toBe(20);
    expect(cap.applyTogether(400, 25, 90)).toBe(25);
    vi.advanceTimersByTime(CLAIM_SIZE_CAP_MS);
    expect(cap.applyTogether(400, 200, 90)).toBe(400);
    expect(cap.room(90)).toBe(Number.POSITIVE_INFINITY);
    cap.learn(200, 10, 90);
    cap.reset();
    expect(cap.applyTogether(400, 200, 90)).toBe(400);
  });

  it('learns nothing from a trickle, a full claim, a claim no larger than the floor, or a cap of the largest claim', () => {
    const cap = make();
    cap.learn(200, 3, 0); // a trickle: a few rows, nothing in flight
    cap.learn(200, 200, 0);
    cap.learn(10, 2, 50);
    cap.learn(200, 150, 700); // half of 850 per claim is more than 200
    expect(cap.apply(200)).toBe(200);
    cap.learn(200, 3, 40);
    expect(cap.apply(200)).toBe(10);
    cap.reset();
    expect(cap.apply(200)).toBe(200);
  });
});
