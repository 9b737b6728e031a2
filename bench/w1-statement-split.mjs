// W1's loop (4 connections: BEGIN; business row; one message statement; COMMIT) with the
// message statement swapped per variant, to split the outbox publish's cost by the parts
// of its statement. Variants run in interleaved rounds; prints commits/s and CPU µs per
// commit of this process and of the 4 backends (/proc), per round and as means.
// Usage: BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres node bench/w1-statement-split.mjs [variant ...]
// Env: ROUNDS (default 3), SECS per round (default 6). Needs `npm run build`; creates and
// drops a database sagabox_w1split_<pid>. Variants are listed in VARIANTS below; their
// texts copy publish's outbox statement (publish-sql.ts) and its parts, so this is a
// diagnostic to rerun by hand, not a measure of what publish sends today (the bench's
// sagabox_statement row is). The ob_* and qm_* variants write the outbox's and the queue's
// row into stand-alone copies of a slot's table (TABLES), with or without its indexes.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { migrateUp } from '@sagabox/core/migrate';

const ROUTES = `NOT EXISTS (SELECT 1 FROM sagabox.direct_routes r WHERE ('.' || $2::text) ~ r.topic_regex)`;
const KEY_LOCK = `($3::text IS NULL OR (SELECT true FROM (SELECT pg_advisory_xact_lock(hashtextextended($3::text, 7337105))) l))`;
const NOTIFY = `($10::text IS NULL OR (SELECT true FROM (SELECT pg_notify($10::text, '')) n))`;
const COLUMNS = `INSERT INTO sagabox.outbox_1 (seq, id, part, topic, key, payload, headers, run_at, expires_at, priority, group_key) OVERRIDING SYSTEM VALUE`;
const ROW = `nextval('sagabox.outbox_seq_seq'::regclass), $1::uuid, 1, $2::text, $3::text, $4::jsonb, $5::jsonb, $6::timestamptz, $7::timestamptz, $8::smallint, $9::text`;
const nine = (n) => [randomUUID(), 'bench.noop', null, JSON.stringify({ n }), '{}', null, null, 0, null];
const PLAIN = 'INSERT INTO plain_messages (topic, payload) VALUES ($1, $2)';
const plain = (n) => ['bench.noop', JSON.stringify({ n })];

// name: [text, values, prepared]
const VARIANTS = {
  floor: [PLAIN, plain, false],
  floorprep: [PLAIN, plain, true],
  full: [`${COLUMNS} SELECT ${ROW} WHERE ${ROUTES} AND ${KEY_LOCK} AND ${NOTIFY}`, (n) => [...nine(n), null], true],
  routesonly: [`${COLUMNS} SELECT ${ROW} WHERE ${ROUTES}`, nine, true],
  noroutes: [`${COLUMNS} SELECT ${ROW} WHERE ${KEY_LOCK} AND ${NOTIFY}`, (n) => [...nine(n), null], true],
  selectonly: [`${COLUMNS} SELECT ${ROW} WHERE $3::text IS NULL`, nine, true],
  nocheck: [`${COLUMNS} VALUES (${ROW})`, nine, true],
  // The outbox row with only its required columns (3 parameters).
  outboxmin: [`INSERT INTO sagabox.outbox_1 (seq, id, part, topic, payload) OVERRIDING SYSTEM VALUE VALUES (nextval('sagabox.outbox_seq_seq'::regclass), $1::uuid, 1, $2::text, $3::jsonb)`, (n) => [randomUUID(), 'bench.noop', JSON.stringify({ n })], true],
};
const OUTBOX_COPY = 'LIKE sagabox.outbox_1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS';
const QUEUE_COPY = 'LIKE sagabox.queue_messages_1 INCLUDING DEFAULTS INCLUDING CONSTRAINTS';
const QUEUE_PK = 'PRIMARY KEY (queue, id, part)';
const QUEUE_CLAIM = (t) => `CREATE INDEX ON ${t} (queue, priority DESC, seq)`;
const QUEUE_PARTIAL = (t) => [`CREATE INDEX ON ${t} (queue, key, seq) WHERE key IS NOT NULL`, `CREATE INDEX ON ${t} (queue, group_key, seq) WHERE group_key IS NOT NULL`];
// name: the statements that make it
const TABLES = {
  ob_pk: [`CREATE TABLE ob_pk (${OUTBOX_COPY}, PRIMARY KEY (seq, part))`],
  ob_all: [`CREATE TABLE ob_all (${OUTBOX_COPY}, PRIMARY KEY (seq, part))`, 'CREATE INDEX ON ob_all (key, seq) WHERE key IS NOT NULL',
    "CREATE INDEX ON ob_all (check_at) WHERE state = 'prepared'", "CREATE UNIQUE INDEX ON ob_all (id, part) WHERE state = 'prepared'"],
  obp_1: [`CREATE TABLE obp (${OUTBOX_COPY}, PRIMARY KEY (seq, part)) PARTITION BY LIST (part)`, 'CREATE TABLE obp_1 PARTITION OF obp FOR VALUES IN (1)'],
  qm_full: [`CREATE TABLE qm_full (${QUEUE_COPY}, ${QUEUE_PK}) WITH (fillfactor = 50)`, QUEUE_CLAIM('qm_full'), ...QUEUE_PARTIAL('qm_full')],
  qm_noclaim: [`CREATE TABLE qm_noclaim (${QUEUE_COPY}, ${QUEUE_PK}) WITH (fillfactor = 50)`, ...QUEUE_PARTIAL('qm_noclaim')],
  qm_nopk: [`CREATE TABLE qm_nopk (${QUEUE_COPY}) WITH (fillfactor = 50)`, QUEUE_CLAIM('qm_nopk'), ...QUEUE_PARTIAL('qm_nopk')],
  qm_noidx: [`CREATE TABLE qm_noidx (${QUEUE_COPY}) WITH (fillfactor = 50)`, ...QUEUE_PARTIAL('qm_noidx')],
};
for (const t of ['ob_pk', 'ob_all', 'obp_1']) VARIANTS[t] = [`INSERT INTO ${t} ${COLUMNS.slice(COLUMNS.indexOf('('))} VALUES (${ROW})`, nine, true];
for (const t of ['qm_full', 'qm_noclaim', 'qm_nopk', 'qm_noidx']) {
  VARIANTS[t] = [`INSERT INTO ${t} (seq, queue, id, part, topic, key, payload, headers, run_at, expires_at, created_at, priority, group_key) OVERRIDING SYSTEM VALUE
    VALUES (nextval('sagabox.queue_messages_seq_seq'::regclass), 'bench', $1::uuid, 1, $2::text, $3::text, $4::jsonb, $5::jsonb, coalesce($6::timestamptz, now()), $7::timestamptz, now(), $8::smallint, $9::text)`, nine, true];
}

const names = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['floor', 'floorprep', 'full', 'routesonly', 'nocheck'];
for (const n of names) if (!(n in VARIANTS)) throw new Error(`no variant ${n}; known: ${Object.keys(VARIANTS).join(', ')}`);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const SECS = Number(process.env.SECS ?? 6);

const base = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `sagabox_w1split_${process.pid}`;
const url = new URL(base);
url.pathname = `/${dbName}`;
const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);

/** One round of one variant: 1 s warm-up, then SECS measured. */
async function round(name) {
  const [text, values, prepared] = VARIANTS[name];
  const statement = prepared ? { name: `split_${name}`, text } : text;
  const clients = await Promise.all([0, 1, 2, 3].map(async () => {
    const c = new pg.Client({ connectionString: url.toString() });
    await c.connect();
    return c;
  }));
  const pids = await Promise.all(clients.map(async (c) => (await c.query('SELECT pg_backend_pid() AS p')).rows[0].p));
  const backendUs = () => pids.reduce((sum, pid) => {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return sum + (Number(f[11]) + Number(f[12])) * 10_000; // utime + stime, at 100 ticks/s
  }, 0);
  let n = 0;
  let stop = false;
  const loops = clients.map(async (c, i) => {
    while (!stop) {
      const k = ++n;
      await c.query('BEGIN');
      await c.query('INSERT INTO orders (customer, amount) VALUES ($1, $2) RETURNING id', [`customer-${i}`, k % 1000]);
      await c.query(statement, values(k));
      await c.query('COMMIT');
    }
  });
  await new Promise((r) => setTimeout(r, 1000));
  const n0 = n;
  const cpu0 = process.cpuUsage();
  const pg0 = backendUs();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECS * 1000));
  const commits = n - n0;
  const cpu = process.cpuUsage(cpu0);
  const pgUs = backendUs() - pg0;
  const ms = performance.now() - t0;
  stop = true;
  await Promise.all(loops);
  await Promise.all(clients.map((c) => c.end()));
  return { rate: (commits / ms) * 1000, node: (cpu.user + cpu.system) / commits, pg: pgUs / commits };
}

try {
  await migrateUp({ connectionString: url.toString(), schema: 'sagabox' });
  const setup = new pg.Client({ connectionString: url.toString() });
  await setup.connect();
  await setup.query('CREATE TABLE orders (id bigserial PRIMARY KEY, customer text NOT NULL, amount int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())');
  await setup.query('CREATE TABLE plain_messages (id bigserial PRIMARY KEY, topic text NOT NULL, payload jsonb NOT NULL)');
  for (const name of names) for (const sql of TABLES[name] ?? []) await setup.query(sql);
  await setup.end();
  const results = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 1; r <= ROUNDS; r++) {
    for (const name of names) {
      const x = await round(name);
      results[name].push(x);
      process.stdout.write(`round ${r} ${name}: ${Math.round(x.rate)} commits/s, node ${x.node.toFixed(1)} µs, backends ${x.pg.toFixed(1)} µs\n`);
    }
  }
  for (const name of names) {
    const xs = results[name];
    const mean = (f) => xs.reduce((s, x) => s + f(x), 0) / xs.length;
    process.stdout.write(`mean ${name.padEnd(10)} ${Math.round(mean((x) => x.rate))} commits/s, node ${mean((x) => x.node).toFixed(1)} µs, backends ${mean((x) => x.pg).toFixed(1)} µs\n`);
  }
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
