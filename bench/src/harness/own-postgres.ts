import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A PostgreSQL server the benchmark started for itself. */
export interface OwnPostgres {
  /** Admin URL (the `postgres` database, trust auth on 127.0.0.1). */
  url: string;
  /** Where its binaries came from, e.g. /usr/lib/postgresql/15/bin. */
  bindir: string;
  stop(): Promise<void>;
}

/**
 * The storage workloads (held snapshot, deep backlog) measure what vacuum does, so
 * they need a server with PostgreSQL's default settings, autovacuum on: a shared test
 * server is often tuned for tests (autovacuum off, fsync off). This starts one from
 * the machine's PostgreSQL binaries (`pg_config --bindir`, else the newest
 * /usr/lib/postgresql/N/bin) with initdb's defaults; only the port, the socket
 * directory and trust auth on 127.0.0.1 are set.
 */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const bindir = findBindir();
  const base = mkdtempSync(path.join(os.tmpdir(), 'sagabox-bench-pg-'));
  const data = path.join(base, 'data');
  const runAs = process.getuid?.() === 0 ? systemUser('postgres') : undefined;
  mkdirSync(data, { mode: 0o700 });
  if (runAs !== undefined) {
    chmodSync(base, 0o755);
    chownSync(base, runAs.uid, runAs.gid);
    chownSync(data, runAs.uid, runAs.gid);
  }
  const run = (program: string, args: string[]): void => {
    const command = runAs === undefined ? [path.join(bindir, program), ...args] : ['runuser', '-u', 'postgres', '--', path.join(bindir, program), ...args];
    const result = spawnSync(command[0]!, command.slice(1), { encoding: 'utf8', cwd: base });
    if (result.status !== 0) throw new Error(`${program} failed (${String(result.status)}): ${result.stderr || result.stdout}`);
  };
  const port = await freePort();
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--encoding=UTF8', '--no-instructions']);
  run('pg_ctl', ['-D', data, '-l', path.join(base, 'server.log'), '-w', '-t', '60', '-o', `-p ${port} -k ${base} -c listen_addresses=127.0.0.1`, 'start']);
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    bindir,
    async stop() {
      try {
        run('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']);
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    },
  };
}

function findBindir(): string {
  try {
    const dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (existsSync(path.join(dir, 'initdb'))) return dir;
  } catch {
    // no pg_config: look where Debian puts the server
  }
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'initdb'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  if (versions[0] === undefined) throw new Error('no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/N/bin); pass --server=url to use BENCH_DATABASE_URL');
  return path.join(root, versions[0], 'bin');
}

function systemUser(name: string): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
