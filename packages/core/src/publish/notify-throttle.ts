/** Publishes of one key less than this many milliseconds apart make a dense run. */
export const DENSE_GAP_MS = 1;
/** How many times longer the throttle window is within a dense run. */
export const DENSE_WINDOW_FACTOR = 5;
/** Keys remembered at most; past it the memory starts again (one extra NOTIFY a key). */
const MAX_KEYS = 10_000;

/**
 * Decides which publishes send the wake-up NOTIFY: at most one per window and key. Keys
 * are the schema for the outbox, and the schema and topic for a topic with a direct
 * route, so neither takes the other's wake-ups.
 *
 * Within a dense run (publishes of the key less than {@link DENSE_GAP_MS} apart) the
 * window is {@link DENSE_WINDOW_FACTOR} times longer. The relay or worker woken at the
 * run's start finds work at each of its lingering looks (every 4 ms) and stays awake
 * without more NOTIFYs, each of which serialises commits. The first publish after a gap
 * uses the plain window, so a consumer that has gone back to sleep is woken as before.
 */
export class NotifyThrottle {
  /** Per key: when it last published and when it last sent a NOTIFY. */
  private readonly seen = new Map<string, { publish: number; notify: number }>();

  /** Records a publish of `key` at `now` (ms); true when it sends the NOTIFY. */
  take(key: string, now: number, windowMs: number): boolean {
    const last = this.seen.get(key);
    if (last === undefined) {
      if (this.seen.size >= MAX_KEYS) this.seen.clear();
      this.seen.set(key, { publish: now, notify: now });
      return true;
    }
    const dense = now - last.publish < DENSE_GAP_MS;
    last.publish = now;
    if (now - last.notify < windowMs * (dense ? DENSE_WINDOW_FACTOR : 1)) return false;
    last.notify = now;
    return true;
  }
}
