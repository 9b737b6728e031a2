import { describe, expect, it } from 'vitest';
import { missingRanges, uuidAtMs } from './partition-ranges.js';

const H = 3_600_000;

describe('missingRanges', () => {
  it('covers the current partition and the time ahead, aligned to the width', () => {
    expect(missingRanges([], 10.5 * H, H, 2 * H)).toEqual([
      { fromMs: 10 * H, toMs: 11 * H },
      { fromMs: 11 * H, toMs: 12 * H },
      { fromMs: 12 * H, toMs: 13 * H },
    ]);
  });

  it('skips what exists and fits new ranges between partitions of another width', () => {
    // A day-wide partition made earlier, then maintenance with an hour width.
    const existing = [{ fromMs: 0, toMs: 11 * H }, { fromMs: 12.5 * H, toMs: 24 * H }];
    expect(missingRanges(existing, 10.5 * H, H, 3 * H)).toEqual([
      { fromMs: 11 * H, toMs: 12 * H },
      { fromMs: 12 * H, toMs: 12.5 * H },
    ]);
    expect(missingRanges(existing, 13 * H, H, 3 * H)).toEqual([]);
  });
});

describe('uuidAtMs', () => {
  it('is the smallest UUIDv7 of that millisecond, so ids sort into their time range', () => {
    expect(uuidAtMs(0x0190a1b2c3d4)).toBe('0190a1b2-c3d4-0000-0000-000000000000');
    expect('0190a1b2-c3d4-7abc-8000-000000000000' >= uuidAtMs(0x0190a1b2c3d4)).toBe(true);
  });
});
