import { BUSINESS_TABLES_SQL, createFreshDatabase, dropDatabase, execute, settle } from '../harness/databases.js';
import type { BenchOptions } from '../harness/options.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { ProduceRow } from '../report/results.js';
import { runProduceLoop } from './produce-loop.js';

/**
 * W1 runs in interleaved rounds (a, b, c, ... then a, b, c, ... again) so that a
 * change in machine load during the run hits every variant alike; each variant keeps
 * its own database across rounds. Ratios come from the summed commits.
 */
export async function runW1(options: BenchOptions, variants: Variant[]): Promise<ProduceRow[]> {
  const rows = variants.map((v): ProduceRow => ({ id: v.id, label: v.label, kind: v.kind, commits: 0, roundRates: [] }));
  const cpu = variants.map(() => ({ commits: 0, nodeUs: 0, postgresUs: 0 as number | undefined }));
  const urls = new Map<string, string>();
  const roundMs = options.w1DurationMs / options.w1Rounds;
  try {
    for (const [i, variant] of variants.entries()) {
      try {
        const url = await createFreshDatabase(options.databaseUrl, `w1_${variant.id}`);
        urls.set(variant.id, url);
        await execute(url, ...BUSINESS_TABLES_SQL);
        await variant.install(url);
      } catch (error) {
        rows[i]!.error = errorText(error);
        progress(`W1 ${variant.label}: setup failed: ${rows[i]!.error}`);
      }
    }
    for (let round = 1; round <= options.w1Rounds; round += 1) {
      for (const [i, variant] of variants.entries()) {
        const row = rows[i]!;
        const url = urls.get(variant.id);
        if (row.error !== undefined || url === undefined) continue;
        try {
          if (variant.openPublisher === undefined) throw new Error('no publisher');
          // Opened per round, so that no peer's background timers run during another's round.
          const publisher = await variant.openPublisher(url);
          try {
            await settle(url);
            const result = await runProduceLoop(url, publisher, { clients: options.w1Clients, warmupMs: options.w1WarmupMs, durationMs: roundMs, cpu: true });
            row.commits = (row.commits ?? 0) + result.commits;
            const c = cpu[i]!;
            c.commits += result.cpu.commits;
            c.nodeUs += result.cpu.nodeUs;
            c.postgresUs = c.postgresUs === undefined || result.cpu.postgresUs === undefined ? undefined : c.postgresUs + result.cpu.postgresUs;
            row.roundRates?.push(Math.round(result.commitsPerSecond));
            progress(`W1 round ${round}/${options.w1Rounds} ${variant.label}: ${Math.round(result.commitsPerSecond)} commits/s`);
          } finally {
            await publisher.close();
          }
        } catch (error) {
          row.error = errorText(error);
          progress(`W1 ${variant.label} failed: ${row.error}`);
        }
      }
    }
  } finally {
    if (!options.keepDatabases) {
      for (const variant of variants) await dropDatabase(options.databaseUrl, `w1_${variant.id}`).catch(() => undefined);
    }
  }
  for (const [i, row] of rows.entries()) {
    if (row.error !== undefined) continue;
    row.commitsPerSecond = (row.commits ?? 0) / (options.w1DurationMs / 1000);
    const c = cpu[i]!;
    if (c.commits > 0) {
      row.cpuPerCommit = { nodeUs: c.nodeUs / c.commits, ...(c.postgresUs === undefined ? {} : { postgresUs: c.postgresUs / c.commits }) };
    }
  }
  return rows;
}

