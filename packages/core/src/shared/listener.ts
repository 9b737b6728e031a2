import pgListen, { type Subscriber } from 'pg-listen';
import type pg from 'pg';
import { randomUUID } from 'node:crypto';
import type { Logger } from './logger.js';

// pg-listen is CommonJS with an `exports.default`; from ESM the function sits one level down.
const createSubscriber = pgListen.default;

/** Default interval between LISTEN self-checks, in milliseconds. */
export const DEFAULT_LISTEN_VERIFY_INTERVAL_MS = 5_000;
/** Default wait for a self-check NOTIFY to come back, in milliseconds. */
export const DEFAULT_LISTEN_VERIFY_TIMEOUT_MS = 2_000;

/** Options of {@link createListener}. */
export interface ListenerOptions {
  /** Connection settings for the dedicated LISTEN session (a session connection, not a pooled transaction). */
  connection: pg.ClientConfig;
  /** Pool used to send self-check NOTIFYs from another session. */
  pool: pg.Pool;
  channels: readonly string[];
  onNotify(channel: string, payload: string): void;
  /** Called after the session was (re)established and is listening again: catch up with a poll. */
  onReconnect(): void;
  logger: Logger;
  verifyIntervalMs?: number;
  verifyTimeoutMs?: number;
}

/** A LISTEN session that checks itself. See {@link createListener}. */
export interface Listener {
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A LISTEN session on its own connection (through pg-listen, which reconnects), that
 * also proves it is still listening: every `verifyIntervalMs` it sends itself a NOTIFY
 * from another session and expects it back within `verifyTimeoutMs`. pg-listen's own
 * check runs a plain query, which succeeds on a session that has silently stopped
 * receiving notifications (for example after a proxy dropped it and a reconnect lost
 * the LISTENs). When the round trip fails, the session is replaced and `onReconnect`
 * runs so the owner polls at once. Notifications are only hints: the owner must poll.
 */
export function createListener(options: ListenerOptions): Listener {
  const log = options.logger;
  const verifyIntervalMs = options.verifyIntervalMs ?? DEFAULT_LISTEN_VERIFY_INTERVAL_MS;
  const verifyTimeoutMs = options.verifyTimeoutMs ?? DEFAULT_LISTEN_VERIFY_TIMEOUT_MS;
  const pingChannel = `sagabox_ping_${randomUUID().replaceAll('-', '')}`;
  let subscriber: Subscriber | undefined;
  let running = false;
  let timer: NodeJS.Timeout | undefined;
  let pending: { token: string; resolve: () => void } | undefined;
  let replacing = false;

  const open = async (): Promise<void> => {
    const sub = createSubscriber(options.connection, {
      paranoidChecking: false,
      retryLimit: Number.POSITIVE_INFINITY,
      retryTimeout: Number.POSITIVE_INFINITY,
      retryInterval: (attempt) => Math.min(100 * 2 ** attempt, 5_000),
      parse: (s: string) => s,
      serialize: (s: string) => s,
    });
    let connectedOnce = false;
    sub.events.on('notification', (n) => {
      if (n.channel === pingChannel) {
        if (pending && n.payload === pending.token) pending.resolve();
        return;
      }
      options.onNotify(n.channel, typeof n.payload === 'string' ? n.payload : '');
    });
    sub.events.on('error', (err) => {
      log.warn({ err }, 'listen session failed; replacing it');
      void replace();
    });
    sub.events.on('reconnect', (attempt) => log.debug({ attempt }, 'listen session reconnecting'));
    sub.events.on('connected', () => {
      if (connectedOnce) {
        log.info({}, 'listen session reconnected');
        options.onReconnect();
      }
      connectedOnce = true;
    });
    subscriber = sub;
    await sub.connect();
    for (const channel of [...options.channels, pingChannel]) await sub.listenTo(channel);
  };

  const close = async (): Promise<void> => {
    const sub = subscriber;
    subscriber = undefined;
    if (!sub) return;
    for (const event of ['notification', 'error', 'reconnect', 'connected'] as const) sub.events.removeAllListeners(event);
    sub.events.on('error', () => {});
    await sub.close().catch(() => {});
  };

  const replace = async (): Promise<void> => {
    if (replacing || !running) return;
    replacing = true;
    try {
      await close();
      await open();
      log.info({}, 'listen session replaced');
      options.onReconnect();
    } catch (err) {
      log.warn({ err }, 'could not open a listen session; polling only until the next check');
      await close();
    } finally {
      replacing = false;
    }
  };

  const verify = async (): Promise<void> => {
    if (!running || replacing) return;
    if (!subscriber) return replace();
    const token = randomUUID();
    const received = new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), verifyTimeoutMs);
      pending = { token, resolve: () => { clearTimeout(t); resolve(true); } };
    });
    try {
      await options.pool.query('SELECT pg_notify($1, $2)', [pingChannel, token]);
    } catch (err) {
      // The database itself is not answering; pg-listen's reconnect and our next check handle it.
      pending = undefined;
      log.debug({ err }, 'listen self-check could not send its NOTIFY');
      return;
    }
    const ok = await received;
    pending = undefined;
    if (!ok && running) {
      log.warn({ verifyTimeoutMs }, 'listen session did not receive its own NOTIFY; replacing it');
      await replace();
    }
  };

  const schedule = (): void => {
    if (!running) return;
    timer = setTimeout(() => {
      void verify().finally(schedule);
    }, verifyIntervalMs);
    timer.unref?.();
  };

  return {
    async start() {
      if (running) return;
      running = true;
      try {
        await open();
      } catch (err) {
        log.warn({ err }, 'could not open a listen session; polling only until the next check');
        await close();
      }
      schedule();
    },
    async stop() {
      if (!running) return;
      running = false;
      if (timer) clearTimeout(timer);
      await close();
    },
  };
}
