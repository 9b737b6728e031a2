import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { addDirectRoute, listDirectRoutes, removeDirectRoute } from '@sagabox/core/admin';
import { migrateUp } from '@sagabox/core/migrate';
import { publish } from '@sagabox/core';
import { publishSql } from '../../packages/core/src/publish/publish-sql.js';
import { useDatabase } from '../support/test-pool.js';

// direct_routes has no partition until a schema's first route: publish's plan then reads
// nothing of it. These tests check that plan, and that the first route still counts from
// its commit for every publisher, waiting only briefly on transactions that published.

const { db, pool, count } = await useDatabase();
const p = pool();
let schemas = 0;

/** A newly migrated schema, so each test starts without any direct route. */
async function freshSchema(): Promise<string> {
  const schema = `first_route_${++schemas}`;
  await migrateUp({ connectionString: db.url, schema });
  return schema;
}

const partitions = (schema: string) =>
  count(`SELECT count(*) AS n FROM pg_inherits WHERE inhparent = $1::regclass`, [`${schema}.direct_routes`]);
const queued = (schema: string, queue: string, ids: string[]) =>
  count(`SELECT count(*) AS n FROM ${schema}.queue_messages WHERE queue = $1 AND id = ANY($2)`, [queue, ids]);
const inOutbox = (schema: string, ids: string[]) => count(`SELECT count(*) AS n FROM ${schema}.outbox WHERE id = ANY($1)`, [ids]);

/** Publishes one message on `c` in its own transaction. */
async function publishOn(c: pg.ClientBase, schema: string, topic: string): Promise<string> {
  await c.query('BEGIN');
  const { ids } = await publish(c, { topic, payload: {} }, { schema });
  await c.query('COMMIT');
  return ids[0]!;
}

/** The plan of publish's outbox statement (slot 0, no key, no NOTIFY) for `topic`. */
async function outboxPlan(schema: string, topic: string): Promise<string> {
  const text = publishSql(schema).insertOutbox[0]![0]!;
  const values = ['00000000-0000-7000-8000-000000000000', topic, null, '{}', '{}', null, null, 0, null];
  const c = await p.connect();
  try {
    await c.query('BEGIN');
    const { rows } = await c.query<{ 'QUERY PLAN': string }>(`EXPLAIN (COSTS OFF) ${text}`, values);
    return rows.map((r) => r['QUERY PLAN']).join('\n');
  } finally {
    await c.query('ROLLBACK');
    c.release();
  }
}

describe('the first direct route of a schema', () => {
  it('leaves publish without a read of direct_routes until it is added, and the partition stays after the last route goes', async () => {
    const schema = await freshSchema();
    expect(await partitions(schema)).toBe(0);
    const before = await outboxPlan(schema, 'plan.t');
    expect(before).toContain('One-Time Filter: false');
    expect(before).not.toMatch(/(Seq|Index|Index Only|Bitmap Heap) Scan on direct_routes/);

    await addDirectRoute(p, { topic: 'plan.#', queue: 'plan-q' }, { schema });
    expect(await partitions(schema)).toBe(1);
    expect(await outboxPlan(schema, 'plan.t')).toMatch(/Scan on direct_routes_all/);

    expect(await removeDirectRoute(p, { topic: 'plan.#', queue: 'plan-q' }, { schema })).toBe(true);
    expect(await listDirectRoutes(p, { schema })).toEqual([]);
    expect(await partitions(schema)).toBe(1);
  });

  it('counts from its commit for a connection that has already cached its publish plan', async () => {
    const schema = await freshSchema();
    const c = await p.connect();
    try {
      // More than five executions: PostgreSQL then runs the prepared statement's generic plan.
      const before: string[] = [];
      for (let i = 0; i < 8; i++) before.push(await publishOn(c, schema, 'cached.t'));
      expect(await inOutbox(schema, before)).toBe(8);

      await addDirectRoute(p, { topic: 'cached.#', queue: 'cached-q' }, { schema });
      const after = await publishOn(c, schema, 'cached.t');
      expect(await queued(schema, 'cached-q', [after])).toBe(1);
      expect(await inOutbox(schema, [after])).toBe(0);
    } finally {
      c.release();
    }
  });

  it('waits for a transaction that has published, letting other publishes through between its attempts', async () => {
    const schema = await freshSchema();
    const holder = await p.connect();
    const other = await p.connect();
    try {
      await holder.query('BEGIN');
      const held = (await publish(holder, { topic: 'wait.t', payload: {} }, { schema })).ids;
      let added = false;
      const adding = addDirectRoute(p, { topic: 'wait.#', queue: 'wait-q' }, { schema }).then(() => {
        added = true;
      });
      // While the route waits on `holder`, other producers keep publishing to the outbox.
      const meanwhile: string[] = [];
      const until = Date.now() + 1_500;
      while (Date.now() < until) meanwhile.push(await publishOn(other, schema, 'wait.t'));
      expect(added).toBe(false);
      expect(meanwhile.length).toBeGreaterThanOrEqual(20);
      expect(await inOutbox(schema, meanwhile)).toBe(meanwhile.length);

      await holder.query('COMMIT');
      await adding;
      expect(await inOutbox(schema, held)).toBe(1);
      const after = await publishOn(other, schema, 'wait.t');
      expect(await queued(schema, 'wait-q', [after])).toBe(1);
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      holder.release();
      other.release();
    }
  });

  it('gives up with lock_not_available when a transaction that published stays open, creating nothing', async () => {
    const schema = await freshSchema();
    const holder = await p.connect();
    try {
      await holder.query('BEGIN');
      await publish(holder, { topic: 'stuck.t', payload: {} }, { schema });
      const started = Date.now();
      const err = await p.query(`SELECT ${schema}.direct_routes_partition($1, $2)`, [50, 3]).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '55P03' });
      expect(String((err as Error).message)).toContain('3 attempts of 50 ms');
      // Three waits and two pauses between them.
      expect(Date.now() - started).toBeGreaterThanOrEqual(240);
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    expect(await partitions(schema)).toBe(0);
  });

  it('still takes INSERT on direct_routes: a role without it gets the partition but no route', async () => {
    const schema = await freshSchema();
    const role = `first_route_reader_${process.pid}`;
    await p.query(`CREATE ROLE ${role}`);
    try {
      await p.query(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
      await p.query(`GRANT SELECT ON ALL TABLES IN SCHEMA ${schema} TO ${role}`);
      const reader = pool(1, { options: `-c role=${role}` });
      const err = await addDirectRoute(reader, { topic: 'priv.#', queue: 'priv-q' }, { schema }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: '42501' });
      expect(await partitions(schema)).toBe(1);
      expect(await listDirectRoutes(p, { schema })).toEqual([]);
    } finally {
      await p.query(`DROP OWNED BY ${role}`);
      await p.query(`DROP ROLE ${role}`);
    }
  });

  it('is added once by two callers at once, and both routes are kept', async () => {
    const schema = await freshSchema();
    await Promise.all([
      addDirectRoute(p, { topic: 'race.a', queue: 'race-a' }, { schema }),
      addDirectRoute(p, { topic: 'race.b', queue: 'race-b' }, { schema }),
    ]);
    expect(await partitions(schema)).toBe(1);
    expect((await listDirectRoutes(p, { schema })).map((r) => r.queue)).toEqual(['race-a', 'race-b']);
  });
});
