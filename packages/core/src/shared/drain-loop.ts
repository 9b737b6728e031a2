import type { Logger } from './logger.js';

/** Options of {@link createDrainLoop}. */
export interface DrainLoopOptions {
  /**
   * Does one unit of work; resolves to how many items it handled and whether the batch
   * was full. `retryInMs`: when nothing was handled, try again after this long rather
   * than the poll interval (a rate limit says when its next token is due).
   */
  run(): Promise<{ handled: number; full: boolean; retryInMs?: number }>;
  pollIntervalMs: number;
  /** After the last productive run, check again after this long (catches throttled wake-ups). */
  lingerMs: number;
  /** How many such checks, `lingerMs` apart, before waiting for the poll interval. Default 1. */
  lingerChecks?: number;
  logger: Logger;
  onError(err: unknown): void;
}

/** A background loop that drains work while there is some, then waits for a wake-up or the poll interval. */
export interface DrainLoop {
  start(): void;
  /** Ask for a run as soon as possible (a NOTIFY hint arrived). */
  wake(): void;
  /** True while the loop waits for a wake-up or its poll interval (not while it runs). */
  readonly idle: boolean;
  /** Stops after the run in flight; resolves when it has finished. */
  stop(): Promise<void>;
}

const ERROR_BACKOFF_BASE_MS = 100;
const ERROR_BACKOFF_MAX_MS = 10_000;

/**
 * The shared loop of the relay and the workers. A failing run never escapes: it is
 * reported through `onError` and the loop backs off (100 ms doubling to 10 s) and
 * continues, so a database restart only pauses it.
 */
export function createDrainLoop(options: DrainLoopOptions): DrainLoop {
  let running = false;
  let woken = false;
  let wakeWaiter: (() => void) | undefined;
  let idle = false;
  let done: Promise<void> | undefined;

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (woken) {
        woken = false;
        resolve();
        return;
      }
      idle = true;
      const done = (): void => {
        idle = false;
        wakeWaiter = undefined;
        resolve();
      };
      const t = setTimeout(done, ms);
      wakeWaiter = () => {
        clearTimeout(t);
        done();
      };
    });

  const loop = async (): Promise<void> => {
    let errors = 0;
    let lingering = 0;
    while (running) {
      woken = false;
      try {
        const { handled, full, retryInMs } = await options.run();
        errors = 0;
        if (!running) break;
        if (full || handled > 0) {
          lingering = options.lingerChecks ?? 1;
          continue;
        }
        if (retryInMs !== undefined) {
          lingering = 0;
          await sleep(Math.max(1, Math.min(retryInMs, options.pollIntervalMs)));
          continue;
        }
        if (lingering > 0) {
          lingering--;
          await sleep(options.lingerMs);
          continue;
        }
        await sleep(options.pollIntervalMs);
      } catch (err) {
        errors++;
        options.onError(err);
        if (!running) break;
        await sleep(Math.min(ERROR_BACKOFF_MAX_MS, ERROR_BACKOFF_BASE_MS * 2 ** Math.min(errors - 1, 10)));
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      done = loop();
    },
    wake() {
      if (wakeWaiter) wakeWaiter();
      else woken = true;
    },
    get idle() {
      return idle;
    },
    async stop() {
      if (!running) return done;
      running = false;
      wakeWaiter?.();
      await done;
    },
  };
}
