// Retention by dropping partitions (maintainStorage) beside retention by DELETE, on the
// same rows, with a REPEATABLE READ snapshot held across both: time taken, dead tuples
// left after VACUUM, and the tables' size afterwards.
// Usage: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/retention-churn.mjs [rows]
// (needs `npm run build`; creates and drops databases sagabox_retention_*).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { maintainStorage } from '@sagabox/core/admin';

const base = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ROWS = Number(process.argv[2] ?? 200_000);
const DAY = 86_400_000;
const cli = fileURLToPath(new URL('../packages/cli/dist/main.js', import.meta.url));

async function freshDatabase(name) {
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name}`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  execFileSync(process.execPath, [cli, 'migrate', 'up', '--database-url', url.toString()], { stdio: 'ignore' });
  return url.toString();
}

async function dropDatabase(name) {
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
}

/** Dead tuples and bytes of a partitioned table's partitions, after a VACUUM (which the held snapshot limits). */
async function tableState(pool, table) {
  await pool.query(`VACUUM sagabox.${table}`);
  await pool.query('SELECT pg_stat_force_next_flush()');
  const { rows } = await pool.query(
    `SELECT coalesce(sum(s.n_dead_tup), 0)::bigint AS dead, coalesce(sum(pg_total_relation_size(i.inhrelid)), 0)::bigint AS bytes
     FROM pg_inherits i LEFT JOIN pg_stat_user_tables s ON s.relid = i.inhrelid WHERE i.inhparent = $1::regclass`,
    [`sagabox.${table}`],
  );
  return { dead: Number(rows[0].dead), mib: Number(rows[0].bytes) / 2 ** 20 };
}

async function load(pool) {
  await maintainStorage(pool, { retention: {} });
  await pool.query(
    `INSERT INTO sagabox.dead_letters (source, queue, id, topic, payload, reason, error, attempts, created_at)
     SELECT 'queue', 'q', gen_random_uuid(), 'bench.dead', jsonb_build_object('n', g), 'failed', 'boom', 3, now() FROM generate_series(1, $1) g`,
    [ROWS],
  );
  // Finished sagas started now (UUIDv7 ids of this millisecond onwards), ten steps each.
  await pool.query(
    `WITH ids AS (
       SELECT (lpad(to_hex((extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0') || '7' || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid AS id
       FROM generate_series(1, $1) g
     ), s AS (
       INSERT INTO sagabox.sagas (id, saga_type, saga_version, status, state) SELECT id, 'bench', 1, 'completed', '{}' FROM ids
     )
     INSERT INTO sagabox.saga_steps (saga_id, step, event) SELECT id, 'step' || n, 'completed' FROM ids, generate_series(1, 10) n`,
    [ROWS / 10],
  );
  await pool.query('ANALYZE');
}

async function run(way) {
  const name = `sagabox_retention_${way}`;
  const url = await freshDatabase(name);
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  await load(pool);
  const holder = await pool.connect();
  await holder.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await holder.query('SELECT 1 FROM sagabox.queues LIMIT 1');
  const before = { dead_letters: await tableState(pool, 'dead_letters'), sagas: await tableState(pool, 'sagas'), saga_steps: await tableState(pool, 'saga_steps') };
  const started = performance.now();
  if (way === 'drop') {
    await maintainStorage(pool, { retention: { deadLettersMs: DAY, sagasMs: DAY }, now: new Date(Date.now() + 3 * DAY) });
  } else {
    await pool.query(`DELETE FROM sagabox.dead_letters WHERE dead_at < now() + interval '1 day'`);
    await pool.query(`WITH gone AS (DELETE FROM sagabox.sagas WHERE status = 'completed' RETURNING id) DELETE FROM sagabox.saga_steps WHERE saga_id IN (SELECT id FROM gone)`);
  }
  const ms = performance.now() - started;
  const after = { dead_letters: await tableState(pool, 'dead_letters'), sagas: await tableState(pool, 'sagas'), saga_steps: await tableState(pool, 'saga_steps') };
  await holder.query('ROLLBACK');
  holder.release();
  await pool.end();
  await dropDatabase(name);
  return { way, ms, before, after };
}

const results = [];
for (const way of ['drop', 'delete']) results.push(await run(way));
console.log(`| retention of ${ROWS.toLocaleString('en')} dead letters, ${(ROWS / 10).toLocaleString('en')} sagas, ${ROWS.toLocaleString('en')} steps, snapshot held | time | dead tuples after VACUUM (dead_letters / sagas / saga_steps) | MiB after (dead_letters / sagas / saga_steps) |`);
console.log('| :-- | --: | --: | --: |');
for (const r of results) {
  const label = r.way === 'drop' ? 'maintainStorage (drop partitions)' : 'DELETE per row';
  const t = ['dead_letters', 'sagas', 'saga_steps'];
  console.log(`| ${label} | ${Math.round(r.ms).toLocaleString('en')} ms | ${t.map((x) => r.after[x].dead.toLocaleString('en')).join(' / ')} | ${t.map((x) => r.after[x].mib.toFixed(1)).join(' / ')} |`);
}
console.log(`| before either | | | ${['dead_letters', 'sagas', 'saga_steps'].map((x) => results[0].before[x].mib.toFixed(1)).join(' / ')} |`);
