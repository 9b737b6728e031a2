import { describe, expect, it } from 'vitest';
import { uuidv7 } from './uuidv7.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('uuidv7', () => {
  it('makes version-7, RFC 9562 variant ids whose first 48 bits are the time in milliseconds', () => {
    const before = Date.now();
    const id = uuidv7();
    const after = Date.now();
    expect(id).toMatch(V7);
    const ms = parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
    expect(ms).toBeGreaterThanOrEqual(before);
    expect(ms).toBeLessThanOrEqual(after);
  });

  it('is strictly increasing within the process, ids of one millisecond and random refills included', () => {
    // 5,000 ids: several refills of the random block, many ids per millisecond.
    const ids = Array.from({ length: 5_000 }, () => uuidv7());
    for (let i = 1; i < ids.length; i++) expect(ids[i]! > ids[i - 1]!).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.every((id) => V7.test(id))).toBe(true);
  });

  it('draws fresh randomness: the random tails of ids from different milliseconds differ', async () => {
    const a = uuidv7();
    await new Promise((r) => setTimeout(r, 3));
    const b = uuidv7();
    expect(a.slice(19)).not.toBe(b.slice(19));
  });
});
