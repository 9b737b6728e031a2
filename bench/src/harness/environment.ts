import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export interface Environment {
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
  postgres: string;
  postgresSettings: Record<string, string>;
  versions: Record<string, string>;
}

const SETTINGS = [
  'synchronous_commit',
  'fsync',
  'full_page_writes',
  'wal_level',
  'shared_buffers',
  'max_wal_size',
  'checkpoint_timeout',
  'work_mem',
  'max_connections',
  'autovacuum',
];

const benchDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Reads an installed package's version from bench/node_modules or the hoisted root node_modules. */
export function installedVersion(name: string): string {
  for (const dir of [path.join(benchDir, 'node_modules'), path.join(benchDir, '..', 'node_modules')]) {
    const file = path.join(dir, name, 'package.json');
    if (existsSync(file)) return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  }
  return 'not installed';
}

export async function describeEnvironment(adminUrl: string): Promise<Environment> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const version = (await client.query<{ server_version: string }>('SHOW server_version')).rows[0]?.server_version ?? '?';
    const { rows } = await client.query<{ name: string; setting: string; unit: string | null }>(
      'SELECT name, setting, unit FROM pg_settings WHERE name = ANY($1) ORDER BY name',
      [SETTINGS],
    );
    const settings: Record<string, string> = {};
    for (const row of rows) settings[row.name] = formatSetting(row.setting, row.unit);
    const cpus = os.cpus();
    return {
      date: new Date().toISOString(),
      cpuModel: cpus[0]?.model.trim() ?? 'unknown',
      cores: cpus.length,
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      os: `${os.type()} ${os.release()} ${os.arch()}`,
      node: process.version,
      postgres: `PostgreSQL ${version}`,
      postgresSettings: settings,
      versions: {
        '@sagabox/core': installedVersion('@sagabox/core'),
        'graphile-worker': installedVersion('graphile-worker'),
        'pg-boss': installedVersion('pg-boss'),
        pg: installedVersion('pg'),
      },
    };
  } finally {
    await client.end();
  }
}

/** pg_settings gives memory in units such as 8kB pages; show them in MB where that is the case. */
function formatSetting(setting: string, unit: string | null): string {
  if (unit === null) return setting;
  const pages = /^(\d+)kB$/.exec(unit);
  if (pages !== null) {
    const kb = Number(setting) * Number(pages[1]);
    return kb >= 1024 ? `${Math.round(kb / 1024)}MB` : `${kb}kB`;
  }
  if (unit === 'MB') return `${setting}MB`;
  return `${setting}${unit}`;
}
