import { afterEach } from 'vitest';

/** What a test starts and must stop: a relay, a worker, a broker consumer (`stop` idempotent). */
export interface Stoppable {
  stop(): Promise<unknown>;
}

/** What {@link stopAfterEach} returns. */
export interface StopAfterEach {
  /** Hands back `item`, to be stopped after the current test. */
  track<T extends Stoppable>(item: T): T;
  /** Stops everything tracked now, all at once (a test that must see them stopped). */
  stopAll(): Promise<void>;
}

/**
 * Stops what each test started after it, passed or failed, so a failing test leaves no
 * relay or worker behind to take the next test's messages.
 */
export function stopAfterEach(): StopAfterEach {
  const running: Stoppable[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(running.splice(0).map((r) => r.stop()));
  };
  afterEach(stopAll);
  return {
    track: (item) => {
      running.push(item);
      return item;
    },
    stopAll,
  };
}
