/** The kinds of data whose retention {@link maintainStorage} keeps, each a set of time-partitioned tables. */
export type RetainedData = 'inbox' | 'deadLetters' | 'halfMessageDecisions' | 'sagas';

/** Most rows one purge of the default partitions deletes; a run repeats it while it takes this many. */
export const PURGE_BATCH = 5_000;

/**
 * Tables partitioned on the same ranges and maintained together: a partition of each is
 * created, and expired, in one transaction (a saga and its history go as one). What sets
 * one kind of data apart is said here as data; {@link keepSql} and {@link purgeOtherSql}
 * build every kind's statements the same way.
 */
export interface RetainedTables {
  data: RetainedData;
  /**
   * Partitioned parents; the first one's partitions are listed. The rows of the others
   * belong to a row of the first (their key is its key) and go, or stay, with it.
   */
  tables: readonly string[];
  /** The partition key of each table, in the same order. */
  keys: readonly string[];
  /** `uuid`: ranges of UUIDv7 ids (time first); `timestamptz`: ranges of time. */
  kind: 'uuid' | 'timestamptz';
  /** The column of the first table whose age, past the cutoff, expires a row of its default partition. */
  agedBy: string;
  /**
   * Rows of the first table (alias `r`) that outlive the cutoff however old: copied back
   * from an expired partition before it is dropped (they land in the default partition,
   * the range being no longer covered), and never purged from the default partition.
   */
  keepIf?: (s: string, r: string) => string;
  /**
   * `agedBy` moves when a row is updated, long after the time its partition key says: a
   * row of an expired partition updated since the cutoff is kept too, and a purge
   * re-checks by key a row that changed meanwhile (by ctid, PostgreSQL 15 would follow
   * the update and delete the new version unchecked).
   */
  updatedInPlace?: boolean;
}

/** Every retained kind of data, in the order a run maintains them. */
export const RETAINED_TABLES: readonly RetainedTables[] = [
  { data: 'inbox', tables: ['inbox'], keys: ['message_id'], kind: 'uuid', agedBy: 'processed_at' },
  { data: 'deadLetters', tables: ['dead_letters'], keys: ['dead_at'], kind: 'timestamptz', agedBy: 'dead_at' },
  {
    data: 'halfMessageDecisions',
    tables: ['half_message_decisions'],
    keys: ['message_id'],
    kind: 'uuid',
    agedBy: 'decided_at',
    // A message still in the outbox (prepared, or committed and not relayed yet) keeps
    // its whole history, as purgeHalfMessageDecisions does.
    keepIf: (s, r) => `EXISTS (SELECT 1 FROM ${s}.outbox o WHERE o.id = ${r}.message_id)`,
  },
  {
    data: 'sagas',
    tables: ['sagas', 'saga_steps'],
    keys: ['id', 'saga_id'],
    kind: 'uuid',
    // Only a finished saga expires, counted from when it finished (its last update): a
    // running, compensating or failed one keeps its row and its whole history.
    agedBy: 'updated_at',
    keepIf: (_s, r) => `${r}.status NOT IN ('completed', 'compensated')`,
    updatedInPlace: true,
  },
];

/** `r` expired at the cutoff `$1`: old enough and not kept. */
function expired(s: string, t: RetainedTables, r: string): string {
  return `${r}.${t.agedBy} < $1::timestamptz${t.keepIf ? ` AND NOT (${t.keepIf(s, r)})` : ''}`;
}

/**
 * The statement that copies the rows of detached, expired partitions (`detached`, in
 * `tables` order) that must outlive them back through the parents, and its values; it
 * returns one row `n`, the rows kept. None when every row of the kind expires with its
 * partition.
 */
export function keepSql(s: string, t: RetainedTables, detached: readonly string[], cutoff: Date): [sql: string, values: unknown[]] | undefined {
  if (!t.keepIf) return undefined;
  const [parent, ...children] = t.tables;
  const key = t.keys[0]!;
  const kept = children.map((child, i) => `, kept_${i} AS (
         INSERT INTO ${s}.${child} OVERRIDING SYSTEM VALUE
         SELECT * FROM ${s}.${detached[i + 1]!} h WHERE h.${t.keys[i + 1]!} IN (SELECT ${key} FROM kept)
         RETURNING 1)`);
  const counted = ['kept', ...children.map((_, i) => `kept_${i}`)].map((c) => `(SELECT count(*) FROM ${c})::int`);
  return [
    `WITH kept AS (
         INSERT INTO ${s}.${parent!} OVERRIDING SYSTEM VALUE
         SELECT * FROM ${s}.${detached[0]!} r WHERE (${t.keepIf(s, 'r')})${t.updatedInPlace ? ` OR r.${t.agedBy} >= $1::timestamptz` : ''}
         RETURNING ${key})${kept.join('')}
       SELECT ${counted.join(' + ')} AS n`,
    t.updatedInPlace ? [cutoff] : [],
  ];
}

/**
 * Deletes up to {@link PURGE_BATCH} expired rows of the default partitions, with the rows
 * of the other tables that belong to them (`$1` the cutoff); returns one row `n`, the
 * first table's rows deleted.
 */
export function purgeOtherSql(s: string, t: RetainedTables): string {
  const [parent, ...children] = t.tables;
  const key = t.keys[0]!;
  const chosen = `SELECT r.${t.updatedInPlace ? key : 'ctid'} FROM ${s}.${parent!}_other r WHERE ${expired(s, t, 'r')} LIMIT ${PURGE_BATCH}`;
  const which = t.updatedInPlace ? `g.${key} IN (${chosen}) AND ${expired(s, t, 'g')}` : `ctid = ANY(ARRAY(${chosen}))`;
  const history = children.map((child, i) => `, gone_${i} AS (
        DELETE FROM ${s}.${child}_other h WHERE h.${t.keys[i + 1]!} IN (SELECT ${key} FROM gone))`);
  return `
      WITH gone AS (
        DELETE FROM ${s}.${parent!}_other g WHERE ${which}
        RETURNING g.${key})${history.join('')}
      SELECT count(*)::int AS n FROM gone`;
}
