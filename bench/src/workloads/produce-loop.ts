import pg from 'pg';
import { sampleBackendCpu } from '../harness/backend-cpu.js';
import { INSERT_ORDER_SQL } from '../harness/databases.js';
import type { Publisher } from '../harness/variant.js';

export interface ProduceResult {
  clients: number;
  measuredMs: number;
  commits: number;
  commitsPerSecond: number;
  /**
   * CPU time over the whole loop, warm-up included, in µs, and the commits it paid for:
   * this process's (the publishing clients' side), and with `cpu` the database's
   * backends' (undefined without it, or when /proc cannot be read). Per commit, steadier
   * than commits/s on a small machine whose speed drifts.
   */
  cpu: { commits: number; nodeUs: number; postgresUs: number | undefined };
}

/**
 * W1: `clients` connections, each looping BEGIN; INSERT a business row; publish;
 * COMMIT, for `warmupMs + durationMs`. Only commits that return inside the measured
 * window count.
 */
export async function runProduceLoop(url: string, publisher: Publisher, options: { clients: number; warmupMs: number; durationMs: number; cpu?: boolean }): Promise<ProduceResult> {
  const clients = await Promise.all(
    Array.from({ length: options.clients }, async () => {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return client;
    }),
  );
  const backends = options.cpu === true ? await sampleBackendCpu(url) : undefined;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const windowStart = start + options.warmupMs;
  const windowEnd = windowStart + options.durationMs;
  let commits = 0;
  let sequence = 0;
  let postgresMs: number | null = null;
  let node = { user: 0, system: 0 };
  try {
    await Promise.all(
      clients.map(async (client, index) => {
        while (performance.now() < windowEnd) {
          const n = (sequence += 1);
          await client.query('BEGIN');
          try {
            await client.query(INSERT_ORDER_SQL, [`customer-${index}`, n % 1000]);
            await publisher.publish(client, n);
            await client.query('COMMIT');
          } catch (error) {
            await client.query('ROLLBACK').catch(() => undefined);
            throw error;
          }
          const now = performance.now();
          if (now >= windowStart && now < windowEnd) commits += 1;
        }
      }),
    );
    node = process.cpuUsage(cpuStart);
  } finally {
    postgresMs = (await backends?.stop()) ?? null;
    await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  }
  return {
    clients: options.clients,
    measuredMs: options.durationMs,
    commits,
    commitsPerSecond: commits / (options.durationMs / 1000),
    cpu: { commits: sequence, nodeUs: node.user + node.system, postgresUs: postgresMs === null ? undefined : postgresMs * 1000 },
  };
}
