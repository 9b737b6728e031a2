import { toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { assertNoProblems, checkInt } from '../shared/retry-policy.js';

/** Default age, in milliseconds, from which an open transaction or snapshot counts as blocking vacuum (five minutes). */
export const DEFAULT_VACUUM_BLOCKED_AFTER_MS = 300_000;

/** What holds PostgreSQL's vacuum horizon back: the oldest transaction, snapshot, prepared transaction or replication slot. */
export interface VacuumHorizonHolder {
  /** A session (a transaction or snapshot left open), a prepared transaction, or a replication slot. */
  kind: 'backend' | 'prepared_transaction' | 'replication_slot';
  /** Backend process id (the slot's active process for a slot); null for a prepared transaction. */
  pid: number | null;
  /** The session's `application_name`; null when unknown. */
  application: string | null;
  /** The session's state (`active`, `idle in transaction`, ...), or `active`/`inactive` for a slot. */
  state: string | null;
  /** Role of the session or owner of the prepared transaction. */
  user: string | null;
  /** Slot name or prepared transaction's gid. */
  name: string | null;
  /** Age of its xmin, in transactions: how many transactions' dead rows vacuum must keep for it. */
  xminAge: number;
  /** How long its transaction (or prepared transaction) has been open, in milliseconds; null for a slot. */
  ageMs: number | null;
}

/** Dead tuples and size of one sagabox table (a partitioned table summed over its partitions). */
export interface TableHealth {
  /** The table's name in sagabox's schema. */
  table: string;
  /** Physical tables counted: 1, or the number of partitions. */
  partitions: number;
  /** Live rows, as PostgreSQL's statistics estimate them. */
  liveTuples: number;
  /** Rows deleted or updated that vacuum has not removed yet (statistics; approximate). */
  deadTuples: number;
  /** Heap, indexes and TOAST, in bytes. */
  bytes: number;
  /** Last vacuum or autovacuum of any of its tables; null if never. */
  lastVacuumAt: Date | null;
}

/** What {@link storageHealth} reports. */
export interface StorageHealth {
  /** The oldest holder of the vacuum horizon in this database (other than this query's own session), or null. */
  oldest: VacuumHorizonHolder | null;
  /**
   * True when a session or prepared transaction has held the horizon for at least
   * `blockedAfterMs`: from then on no dead row of any sagabox table is removed, and
   * every table that deletes rows grows. Replication slots are reported in `oldest` but
   * do not set this (a standby with feedback holds the horizon by design).
   */
  vacuumBlocked: boolean;
  /** Every table in the sagabox schema, by name. */
  tables: TableHealth[];
}

/** Options of {@link storageHealth}. */
export interface StorageHealthOptions {
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
  /** Age from which a holder counts as blocking vacuum, in milliseconds. Default {@link DEFAULT_VACUUM_BLOCKED_AFTER_MS}. */
  blockedAfterMs?: number;
}

const HOLDER_SQL = `
  SELECT * FROM (
    SELECT 'backend' AS kind, a.pid, a.application_name AS application, a.state, a.usename::text AS "user",
           NULL::text AS name, age(a.backend_xmin)::int AS xmin_age,
           (extract(epoch FROM now() - coalesce(a.xact_start, a.query_start)) * 1000)::float8 AS age_ms
    FROM pg_stat_activity a
    WHERE a.backend_xmin IS NOT NULL AND a.pid <> pg_backend_pid()
      AND (a.datname = current_database() OR a.datname IS NULL)
    UNION ALL
    SELECT 'prepared_transaction', NULL, NULL, NULL, p.owner::text, p.gid, age(p.transaction)::int,
           (extract(epoch FROM now() - p.prepared) * 1000)::float8
    FROM pg_prepared_xacts p WHERE p.database = current_database()
    UNION ALL
    SELECT 'replication_slot', r.active_pid, NULL, CASE WHEN r.active THEN 'active' ELSE 'inactive' END, NULL,
           r.slot_name::text, age(r.xmin)::int, NULL
    FROM pg_replication_slots r WHERE r.xmin IS NOT NULL
  ) h ORDER BY xmin_age DESC LIMIT 1`;

// Partitions are summed into their parent; a partitioned parent has no storage of its own.
const TABLES_SQL = `
  SELECT coalesce(parent.relname, c.relname)::text AS "table", count(*)::int AS partitions,
         sum(s.n_live_tup)::float8 AS live, sum(s.n_dead_tup)::float8 AS dead,
         sum(pg_total_relation_size(c.oid))::float8 AS bytes,
         max(greatest(s.last_vacuum, s.last_autovacuum)) AS last_vacuum
  FROM pg_stat_user_tables s
  JOIN pg_class c ON c.oid = s.relid
  LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
  LEFT JOIN pg_class parent ON parent.oid = i.inhparent
  WHERE s.schemaname = $1 AND c.relkind <> 'p'
  GROUP BY 1 ORDER BY 1`;

/**
 * Whether vacuum can keep sagabox's tables small, before it hurts: the oldest
 * transaction, snapshot, prepared transaction or replication slot holding the vacuum
 * horizon back (age, pid, application, state), whether that has lasted long enough to
 * call vacuum blocked, and the live and dead tuples and size of every sagabox table.
 * Reads only catalogs and statistics views; naming other roles' sessions needs the
 * `pg_read_all_stats` (or `pg_monitor`) role.
 *
 * @example
 * const health = await storageHealth(pool);
 * if (health.vacuumBlocked) logger.warn({ holder: health.oldest }, 'vacuum is blocked');
 */
export async function storageHealth(db: Executor, options: StorageHealthOptions = {}): Promise<StorageHealth> {
  const problems: string[] = [];
  checkInt(problems, 'blockedAfterMs', options.blockedAfterMs, 0, Number.MAX_SAFE_INTEGER);
  let schema = DEFAULT_SCHEMA;
  try {
    schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  } catch (err) {
    problems.push((err as Error).message);
  }
  assertNoProblems('storageHealth', problems);
  const run = toRunQuery(db);
  // One after the other: a second connection running the other query would be a holder itself.
  const [holders, tables] = [
    await 
    run<{ kind: VacuumHorizonHolder['kind']; pid: number | null; application: string | null; state: string | null; user: string | null; name: string | null; xmin_age: number; age_ms: number | null }>(HOLDER_SQL, []),
    await run<{ table: string; partitions: number; live: number; dead: number; bytes: number; last_vacuum: Date | null }>(TABLES_SQL, [schema]),
  ];
  const h = holders[0];
  const oldest: VacuumHorizonHolder | null = h
    ? { kind: h.kind, pid: h.pid, application: h.application || null, state: h.state, user: h.user, name: h.name, xminAge: h.xmin_age, ageMs: h.age_ms === null ? null : Math.max(0, Math.round(h.age_ms)) }
    : null;
  const blockedAfterMs = options.blockedAfterMs ?? DEFAULT_VACUUM_BLOCKED_AFTER_MS;
  return {
    oldest,
    vacuumBlocked: oldest !== null && oldest.kind !== 'replication_slot' && (oldest.ageMs ?? 0) >= blockedAfterMs,
    tables: tables.map((t) => ({ table: t.table, partitions: t.partitions, liveTuples: t.live, deadTuples: t.dead, bytes: t.bytes, lastVacuumAt: t.last_vacuum })),
  };
}
