import { readFile } from 'node:fs/promises';
import pg from 'pg';

/** Samples the CPU time of a database's PostgreSQL backends; see {@link sampleBackendCpu}. */
export interface BackendCpuSampler {
  /** Stops sampling; resolves to the CPU time the database's backends used meanwhile, in ms, or null when it could not be read. */
  stop(): Promise<number | null>;
}

/** utime + stime of a process, in clock ticks, from /proc (null when it is gone or unreadable). */
async function cpuTicks(pid: number): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // A server in a container has pids of its own: a local process of that pid is someone else.
    if (!stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).startsWith('postgres')) return null;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

// Linux's USER_HZ: /proc reports times in 1/100 s on every common architecture.
const TICK_MS = 10;

/**
 * PostgreSQL CPU spent for a database while a workload runs: every `everyMs` the
 * backends connected to it (but the sampler's own) are listed and their CPU read from
 * /proc, so this works only when the server runs on this machine. A backend first seen
 * after the start counts from zero (its whole life is the workload's); one that exits
 * between two samples loses its last interval. Claims, completions and inbox writes are
 * what a queue's consumer costs the database, whatever process it runs in.
 */
export async function sampleBackendCpu(url: string, everyMs = 100): Promise<BackendCpuSampler> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  let readable = true;
  const sample = async (baseline: boolean): Promise<void> => {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    for (const { pid } of rows) {
      const ticks = await cpuTicks(pid);
      if (ticks === null) {
        if (!last.has(pid)) readable = false;
        continue;
      }
      if (!first.has(pid)) first.set(pid, baseline ? ticks : 0);
      last.set(pid, ticks);
    }
  };
  await sample(true);
  let running = true;
  const loop = (async () => {
    while (running) {
      await new Promise((r) => setTimeout(r, everyMs));
      await sample(false).catch(() => {});
    }
  })();
  return {
    async stop() {
      await sample(false).catch(() => {});
      running = false;
      await loop;
      await client.end().catch(() => {});
      if (!readable && last.size === 0) return null;
      let ticks = 0;
      for (const [pid, end] of last) ticks += end - (first.get(pid) ?? 0);
      return ticks * TICK_MS;
    },
  };
}
