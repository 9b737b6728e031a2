/** The kinds of data whose retention {@link maintainStorage} keeps, each a set of time-partitioned tables. */
export type RetainedData = 'inbox' | 'deadLetters' | 'halfMessageDecisions' | 'sagas';

/**
 * Tables partitioned on the same ranges and maintained together: a partition of each is
 * created, and expired, in one transaction (a saga and its history go as one).
 */
export interface RetainedTables {
  data: RetainedData;
  /** Partitioned parents; the first one's partitions are listed. */
  tables: readonly string[];
  /** The partition key of each table, in the same order. */
  keys: readonly string[];
  /** `uuid`: ranges of UUIDv7 ids (time first); `timestamptz`: ranges of time. */
  kind: 'uuid' | 'timestamptz';
  /**
   * Copies the rows of detached, expired partitions (`detached`, in `tables` order) that
   * must outlive them back through the parents: the range is no longer covered, so they
   * land in the default partition. Returns the statement and its values; the statement
   * returns one row `n`, the rows kept.
   */
  keep?: (s: string, detached: readonly string[], cutoff: Date) => [sql: string, values: unknown[]];
  /** Deletes up to 5,000 expired rows of the default partitions (`$1` the cutoff); returns one row `n`. */
  purgeOther: (s: string) => string;
}

/** Every retained kind of data, in the order a run maintains them. */
export const RETAINED_TABLES: readonly RetainedTables[] = [
  {
    data: 'inbox',
    tables: ['inbox'],
    keys: ['message_id'],
    kind: 'uuid',
    purgeOther: (s) => `
      WITH gone AS (
        DELETE FROM ${s}.inbox_other WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM ${s}.inbox_other WHERE processed_at < $1::timestamptz LIMIT 5000))
        RETURNING 1)
      SELECT count(*)::int AS n FROM gone`,
  },
  {
    data: 'deadLetters',
    tables: ['dead_letters'],
    keys: ['dead_at'],
    kind: 'timestamptz',
    purgeOther: (s) => `
      WITH gone AS (
        DELETE FROM ${s}.dead_letters_other WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM ${s}.dead_letters_other WHERE dead_at < $1::timestamptz LIMIT 5000))
        RETURNING 1)
      SELECT count(*)::int AS n FROM gone`,
  },
  {
    data: 'halfMessageDecisions',
    tables: ['half_message_decisions'],
    keys: ['message_id'],
    kind: 'uuid',
    // A message still in the outbox (prepared, or committed and not relayed yet) keeps
    // its whole history, as purgeHalfMessageDecisions does.
    keep: (s, [decisions]) => [
      `WITH kept AS (
         INSERT INTO ${s}.half_message_decisions OVERRIDING SYSTEM VALUE
         SELECT * FROM ${s}.${decisions} d WHERE EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = d.message_id)
         RETURNING 1)
       SELECT count(*)::int AS n FROM kept`,
      [],
    ],
    purgeOther: (s) => `
      WITH gone AS (
        DELETE FROM ${s}.half_message_decisions_other d WHERE ctid = ANY(ARRAY(
          SELECT ctid FROM ${s}.half_message_decisions_other x
          WHERE x.decided_at < $1::timestamptz AND NOT EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = x.message_id)
          LIMIT 5000))
        RETURNING 1)
      SELECT count(*)::int AS n FROM gone`,
  },
  {
    data: 'sagas',
    tables: ['sagas', 'saga_steps'],
    keys: ['id', 'saga_id'],
    kind: 'uuid',
    // Only a finished saga expires, counted from when it finished (its last update): a
    // running, compensating or failed one keeps its row and its whole history.
    keep: (s, [sagas, steps], cutoff) => [
      `WITH kept AS (
         INSERT INTO ${s}.sagas
         SELECT * FROM ${s}.${sagas} g WHERE g.status NOT IN ('completed', 'compensated') OR g.updated_at >= $1::timestamptz
         RETURNING id
       ), history AS (
         INSERT INTO ${s}.saga_steps OVERRIDING SYSTEM VALUE
         SELECT * FROM ${s}.${steps} h WHERE h.saga_id IN (SELECT id FROM kept)
         RETURNING 1)
       SELECT (SELECT count(*) FROM kept)::int + (SELECT count(*) FROM history)::int AS n`,
      [cutoff],
    ],
    // The outer WHERE repeats the test: a saga retried or updated meanwhile stays.
    purgeOther: (s) => `
      WITH gone AS (
        DELETE FROM ${s}.sagas_other g
        WHERE g.id IN (SELECT x.id FROM ${s}.sagas_other x
                       WHERE x.status IN ('completed', 'compensated') AND x.updated_at < $1::timestamptz LIMIT 5000)
          AND g.status IN ('completed', 'compensated') AND g.updated_at < $1::timestamptz
        RETURNING g.id
      ), history AS (
        DELETE FROM ${s}.saga_steps_other h WHERE h.saga_id IN (SELECT id FROM gone)
      )
      SELECT count(*)::int AS n FROM gone`,
  },
];
