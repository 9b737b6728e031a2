// A user's project in miniature: @sagabox/testing installed from its packed tarball next
// to a given testcontainers major, run with a given Node. CI copies this file into such a
// project (so imports resolve from its node_modules) and runs it with DOCKER_HOST set and
// no database URL. Checks: the peer range accepted that testcontainers; startPostgres()
// chose Testcontainers; createTestDatabase() migrates; startDisposablePostgres() restarts
// a container on the same URL with its data.
//
//   EXPECT_TESTCONTAINERS_MAJOR=12 "$NODE24" "$dir/check.mjs"
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import { createTestDatabase, startDisposablePostgres, startPostgres } from '@sagabox/testing';

const say = (line) => process.stdout.write(`consumer-check: ${line}\n`);
const version = (name) =>
  JSON.parse(readFileSync(new URL(`./node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;

const tc = version('testcontainers');
const tcPg = version('@testcontainers/postgresql');
say(`node ${process.version}, testcontainers ${tc}, @testcontainers/postgresql ${tcPg}`);
const major = process.env.EXPECT_TESTCONTAINERS_MAJOR;
if (major) {
  assert.equal(tc.split('.')[0], major, 'testcontainers major');
  assert.equal(tcPg.split('.')[0], major, '@testcontainers/postgresql major');
}

async function query(url, text) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(text)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

const server = await startPostgres({ announce: true });
try {
  assert.equal(server.backend, 'testcontainers');
  const [{ server_version }] = await query(server.url, 'SHOW server_version');
  say(`startPostgres: ${server.backend}, PostgreSQL ${server_version}`);

  const db = await createTestDatabase({ url: server.url });
  assert.deepEqual(await query(db.url, "SELECT to_regclass('sagabox.outbox')::text AS t"), [{ t: 'sagabox.outbox' }]);
  await db.drop();
  say('createTestDatabase: migrated database made and dropped');

  const disposable = await startDisposablePostgres();
  try {
    assert.equal(disposable.backend, 'testcontainers');
    const url = disposable.url;
    await query(url, "CREATE TABLE kept AS SELECT 'yes'::text AS v");
    await disposable.restart();
    assert.equal(disposable.url, url);
    assert.deepEqual(await query(url, 'SELECT v FROM kept'), [{ v: 'yes' }]);
    say('startDisposablePostgres: restarted on the same URL, data kept');
  } finally {
    await disposable.stop();
  }
} finally {
  await server.stop();
}
say('ok');
