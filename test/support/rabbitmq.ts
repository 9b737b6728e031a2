import { randomUUID } from 'node:crypto';
import { afterAll } from 'vitest';
import { Connection, type SyncMessage } from 'rabbitmq-client';

/** The machine's RabbitMQ (CI starts it when port 5672 is down). */
export const RABBITMQ_URL = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * A test's own view of RabbitMQ: unique exchange and queue names, each deleted after
 * the file, and a connection to inspect queues with.
 */
export function useRabbitMq(): {
  rabbit: Connection;
  name: (what: string) => string;
  drain: (queue: string, timeoutMs?: number) => Promise<SyncMessage[]>;
  depth: (queue: string) => Promise<number>;
} {
  const rabbit = new Connection({ url: RABBITMQ_URL, retryLow: 250, retryHigh: 2_000 });
  rabbit.on('error', () => {});
  const run = randomUUID().slice(0, 8);
  const names: string[] = [];
  afterAll(async () => {
    for (const n of names) {
      await rabbit.queueDelete({ queue: n }).catch(() => {});
      await rabbit.queueDelete({ queue: `${n}.dead` }).catch(() => {});
      await rabbit.exchangeDelete({ exchange: n }).catch(() => {});
    }
    await rabbit.close();
  });
  return {
    rabbit,
    /** A name unique to this run; queues, `<name>.dead` and exchanges of that name are deleted after the file. */
    name(what) {
      const n = `sagabox-test.${what}.${run}`;
      names.push(n);
      return n;
    },
    /** Takes every message now in `queue` (acknowledged). */
    async drain(queue) {
      const out: SyncMessage[] = [];
      for (;;) {
        const m = await rabbit.basicGet({ queue, noAck: true });
        if (!m) return out;
        out.push(m);
      }
    },
    async depth(queue) {
      return (await rabbit.queueDeclare({ queue, passive: true })).messageCount;
    },
  };
}
