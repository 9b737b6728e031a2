import { CompiledQuery } from 'kysely';
import type pg from 'pg';
import { SagaboxError } from './errors.js';
import { namedStatement } from './prepared.js';

/**
 * Where a caller's statements run: a kysely `Kysely`/`Transaction`, or a `pg` client
 * (`Client` or `PoolClient`, normally inside the caller's transaction).
 * A `pg.Pool` is accepted too, but each statement then runs on its own connection,
 * outside any transaction of yours.
 */
export type Executor = KyselyLike | pg.ClientBase | pg.Pool;

/** The part of kysely's `Kysely` and `Transaction` that sagabox uses. */
export interface KyselyLike {
  /** Runs a compiled query, as Kysely's `executeQuery` does. */
  executeQuery<R>(query: CompiledQuery<R>): Promise<{ rows: R[]; numAffectedRows?: bigint }>;
}

/**
 * A function that runs one parameterised statement and returns its rows. With
 * `prepare`, a `pg` executor runs it as a named prepared statement (parsed and planned
 * once per connection); kysely executors ignore it.
 */
export type RunQuery = <R = Record<string, unknown>>(text: string, values: unknown[], prepare?: boolean) => Promise<R[]>;

function isKysely(db: unknown): db is KyselyLike {
  return typeof (db as KyselyLike | null)?.executeQuery === 'function';
}

function isPg(db: unknown): db is pg.ClientBase | pg.Pool {
  return typeof (db as pg.ClientBase | null)?.query === 'function';
}

/**
 * Adapts any accepted {@link Executor} to one `run(text, values)` function.
 * @throws {SagaboxError} `UNSUPPORTED_EXECUTOR` for anything else.
 */
export function toRunQuery(db: Executor): RunQuery {
  if (isKysely(db)) {
    return async <R>(text: string, values: unknown[]) =>
      (await db.executeQuery(CompiledQuery.raw(text, values))).rows as R[];
  }
  if (isPg(db)) {
    return async <R>(text: string, values: unknown[], prepare = false) => (await pgQuery(db, text, values, prepare)).rows as R[];
  }
  return unsupportedExecutor();
}

// Values apart from the text or statement: pg copies a config object's own properties
// (descriptors and all) on every query, and namedStatement has none.
function pgQuery(db: pg.ClientBase | pg.Pool, text: string, values: unknown[], prepare: boolean): Promise<pg.QueryResult> {
  return prepare ? (db as pg.ClientBase).query(namedStatement(text), values) : (db as pg.ClientBase).query(text, values);
}

function unsupportedExecutor(): never {
  throw new SagaboxError(
    'UNSUPPORTED_EXECUTOR',
    'db must be a kysely Kysely/Transaction or a pg Client/PoolClient/Pool',
  );
}

/**
 * {@link toRunQuery} for a statement without a result: resolves to the number of rows it
 * wrote. A statement without `RETURNING` spares both sides a row description and its
 * rows on every call.
 */
export function toRunCount(db: Executor): (text: string, values: unknown[], prepare?: boolean) => Promise<number> {
  if (isKysely(db)) {
    return async (text, values) => Number((await db.executeQuery(CompiledQuery.raw(text, values))).numAffectedRows ?? 0);
  }
  if (isPg(db)) {
    return async (text, values, prepare = false) => (await pgQuery(db, text, values, prepare)).rowCount ?? 0;
  }
  return unsupportedExecutor();
}
