import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DENSE_GAP_MS, DENSE_WINDOW_FACTOR, NotifyThrottle } from './notify-throttle.js';

/** The times of `gaps` (ms) from 0, and which of them the throttle lets NOTIFY. */
function run(gaps: number[], windowMs: number, throttle = new NotifyThrottle(), key = 's'): { at: number; notified: boolean }[] {
  let at = 0;
  return gaps.map((gap, i) => {
    if (i > 0) at += gap;
    return { at, notified: throttle.take(key, at, windowMs) };
  });
}

// Gaps between publishes: mostly within a dense run, sometimes a pause.
const gaps = fc.array(fc.oneof(fc.double({ min: 0, max: 0.999, noNaN: true }), fc.double({ min: 1, max: 30, noNaN: true })), { minLength: 1, maxLength: 300 });
const windows = fc.integer({ min: 0, max: 20 });

describe('NotifyThrottle', () => {
  it('sends one NOTIFY per window; within a dense run, one per five windows', () => {
    const every = (gap: number) => run(Array.from({ length: 121 }, () => gap), 2).filter((p) => p.notified).map((p) => p.at);
    expect(every(1.5)).toEqual(Array.from({ length: 61 }, (_, i) => i * 3));
    expect(every(0.5)).toEqual([0, 10, 20, 30, 40, 50, 60]);
  });

  it('wakes a consumer with the first publish after a pause, also right after a dense run', () => {
    const t = new NotifyThrottle();
    expect(t.take('s', 0, 2)).toBe(true);
    expect(t.take('s', 0.5, 2)).toBe(false);
    expect(t.take('s', 1, 2)).toBe(false);
    expect(t.take('s', 3.5, 2)).toBe(true); // 2.5 ms after the last publish: not dense
  });

  it('keeps each key apart: a topic with a direct route does not lose its NOTIFY to the outbox', () => {
    const t = new NotifyThrottle();
    expect(t.take('sagabox', 0, 60_000)).toBe(true);
    expect(t.take('sagabox\u0000orders.created', 0.1, 60_000)).toBe(true);
    expect(t.take('sagabox', 0.2, 60_000)).toBe(false);
    expect(t.take('sagabox\u0000orders.created', 0.3, 60_000)).toBe(false);
  });

  it('never sends two NOTIFYs of a key within a window', () => {
    fc.assert(fc.property(gaps, windows, (g, w) => {
      const sent = run(g, w).filter((p) => p.notified).map((p) => p.at);
      for (let i = 1; i < sent.length; i++) expect(sent[i]! - sent[i - 1]!).toBeGreaterThanOrEqual(w);
    }));
  });

  it('sends one for the first publish, for a publish after a pause once the window has passed, and always after five windows', () => {
    fc.assert(fc.property(gaps, windows, (g, w) => {
      const ps = run(g, w);
      expect(ps[0]!.notified).toBe(true);
      let last = 0;
      ps.forEach((p, i) => {
        if (i > 0) {
          const sincePublish = p.at - ps[i - 1]!.at;
          const sinceNotify = p.at - last;
          if (sinceNotify >= w * DENSE_WINDOW_FACTOR || (sincePublish >= DENSE_GAP_MS && sinceNotify >= w)) expect(p.notified).toBe(true);
        }
        if (p.notified) last = p.at;
      });
    }));
  });

  it('decides each key as if it were alone', () => {
    fc.assert(fc.property(gaps, gaps, windows, (a, b, w) => {
      const alone = [run(a, w).map((p) => p.notified), run(b, w).map((p) => p.notified)];
      // Interleave the two keys' publishes on one throttle, in time order.
      const times = (g: number[]) => run(g, w).map((p) => p.at);
      const events = [...times(a).map((at, i) => ({ at, key: 0, i })), ...times(b).map((at, i) => ({ at, key: 1, i }))].sort((x, y) => x.at - y.at);
      const t = new NotifyThrottle();
      const together = [a.map(() => false), b.map(() => false)];
      for (const e of events) together[e.key]![e.i] = t.take(`k${e.key}`, e.at, w);
      expect(together).toEqual(alone);
    }));
  });
});
