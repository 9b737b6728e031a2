import { connect, type NatsConnection } from '@nats-io/transport-node';
import { SagaboxError, type Logger } from '@sagabox/core';

/** Where a bridge gets its NATS connection: servers it connects to itself, or a connection the application owns. */
export type NatsConnectionSource =
  | { servers: string | string[]; connection?: undefined }
  | { connection: NatsConnection; servers?: undefined };

/** Default wait between reconnect attempts, in milliseconds. */
export const DEFAULT_RECONNECT_TIME_WAIT_MS = 250;

/**
 * A bridge's hold on its connection: whether it is usable now, and the connection once
 * it is. A connection it opened itself retries forever (first connect included), so a
 * broker that is down when the process starts only delays delivery.
 */
export interface HeldConnection {
  /** The connection if it is open and not reconnecting, else undefined. */
  usable(): NatsConnection | undefined;
  /** Resolves with the connection once it is first connected. */
  readonly ready: Promise<NatsConnection>;
  /** Closes the connection if the bridge opened it (after draining it), else stops watching it. */
  close(): Promise<void>;
}

/** Opens (or adopts) a connection and watches its status. */
export function holdConnection(source: NatsConnectionSource, name: string, log: Logger): HeldConnection {
  const owned = source.connection === undefined;
  let nc: NatsConnection | undefined = source.connection;
  let connected = nc !== undefined && !nc.isClosed();
  let closing = false;
  const watch = async (c: NatsConnection): Promise<void> => {
    for await (const s of c.status()) {
      if (s.type === 'disconnect') {
        connected = false;
        log.warn({ server: s.server }, 'NATS connection lost; reconnecting');
      } else if (s.type === 'reconnect') {
        connected = true;
        log.info({ server: s.server }, 'NATS connection restored');
      } else if (s.type === 'close') {
        connected = false;
      }
    }
  };
  // The first connect is retried here rather than with nats.js's waitOnFirstConnect,
  // so that close() can end the wait of a bridge whose broker never came up.
  const firstConnect = async (servers: string | string[]): Promise<NatsConnection> => {
    for (let attempt = 1; ; attempt++) {
      try {
        // noAsyncTraces: otherwise nats.js builds two Error objects, stacks included, for
        // every request (each PubAck awaited) just in case it fails. Our failures are
        // wrapped in a SagaboxError naming the message and subject instead.
        const c = await connect({ servers, name, maxReconnectAttempts: -1, reconnectTimeWait: DEFAULT_RECONNECT_TIME_WAIT_MS, noAsyncTraces: true });
        if (closing) {
          await c.close();
          throw new SagaboxError('BROKER_UNREACHABLE', 'closed before the NATS connection was made');
        }
        nc = c;
        connected = true;
        log.info({ server: c.getServer() }, 'NATS connected');
        return c;
      } catch (err) {
        if (closing) throw err;
        if (attempt === 1 || attempt % 20 === 0) log.warn({ err, attempt }, 'NATS unreachable; retrying');
        await new Promise((r) => setTimeout(r, Math.min(5_000, DEFAULT_RECONNECT_TIME_WAIT_MS * attempt)).unref());
      }
    }
  };
  const ready: Promise<NatsConnection> = owned ? firstConnect(source.servers) : Promise.resolve(nc!);
  // A failed first connect (bad URL, closed while waiting) is reported by whoever awaits ready.
  ready.then((c) => watch(c), () => {}).catch((err: unknown) => log.warn({ err }, 'NATS status watch ended'));
  return {
    usable: () => (connected && nc !== undefined && !nc.isClosed() && !closing ? nc : undefined),
    ready,
    async close() {
      closing = true;
      if (!owned || nc === undefined || nc.isClosed()) return;
      await nc.drain().catch(() => nc?.close());
    },
  };
}
