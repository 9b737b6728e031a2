// What the stand-alone bench scripts share: loading @sagabox/core from this checkout or
// another one, and a database of their own for one run.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';

/**
 * An entry of @sagabox/core ('' for the package, '/migrate', ...): this checkout's, or
 * the build in `coreDir` (another checkout's packages/core) to compare two trees.
 */
export function coreLoader(coreDir) {
  return (entry) => import(coreDir === undefined ? `@sagabox/core${entry}` : pathToFileURL(path.join(coreDir, 'dist', `${entry === '' ? 'index' : entry.slice(1)}.js`)).href);
}

/** Creates the database `<prefix>_<pid>` on the server of `base`; `drop()` removes it. */
export async function scratchDatabase(base, prefix) {
  const name = `${prefix}_${process.pid}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** CPU time of every postgres process on this machine so far, in ms. */
export function postgresCpuMs() {
  let ticks = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (!stat.includes('(postgres)')) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks * 10;
}

/**
 * A migrated database of its own for one run of a script, `<prefix>_<pid>` on the server of
 * BENCH_DATABASE_URL (default: the machine's PostgreSQL), with a pool of 12 and `load`
 * for the entries of @sagabox/core (this checkout's, or the build in `coreDir`).
 * `close()` ends the pool and drops the database.
 */
export async function migratedScratch(prefix, coreDir) {
  const load = coreLoader(coreDir);
  const { migrateUp } = await load('/migrate');
  const db = await scratchDatabase(process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres', prefix);
  const pool = new pg.Pool({ connectionString: db.url, max: 12 });
  pool.on('error', () => {});
  const close = async () => {
    await pool.end();
    await db.drop();
  };
  try {
    await migrateUp({ connectionString: db.url, schema: 'sagabox' });
  } catch (err) {
    await close();
    throw err;
  }
  return { load, db, pool, close };
}
