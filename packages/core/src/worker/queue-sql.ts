import { statementsFor } from '../shared/statements.js';

/**
 * The worker's housekeeping statements for one schema ($1 is the queue); the claims are
 * in claim-sql.ts, the batch handler's statements in batch-sql.ts.
 */
export const queueSql = statementsFor((s) => ({
  /**
   * Ends the leases of claimed messages no slot handled (a stopping worker's buffer): $2
   * ids, $3 their lease tokens. Their attempt is given back: they were never handled.
   */
  releaseLeases: `
    UPDATE ${s}.queue_messages m
    SET lease_token = NULL, locked_until = NULL, locked_by = NULL, attempts = m.attempts - 1
    FROM unnest($2::uuid[], $3::uuid[]) AS f(id, token)
    WHERE m.queue = $1 AND m.id = f.id AND m.lease_token = f.token`,
  /**
   * Lease rows of slots whose worker died without acking (they stopped counting when
   * they ran out, see flow_grant) and released rows of idle slots: a slot's next counted
   * claim writes its row again.
   */
  purgeLeases: `DELETE FROM ${s}.queue_leases WHERE queue = $1 AND locked_until <= now()`,
  /**
   * Whether the trickle's vacuum may run (see trickle-vacuum.ts): $1 the schema's name,
   * $2 the largest table size in bytes it vacuums (all partitions together); `owner` when this role may vacuum it.
   */
  trickleVacuumDue: `
    SELECT (SELECT sum(pg_relation_size(t.relid)) FROM pg_partition_tree(c.oid) t) <= $2 AS small,
           pg_has_role(c.relowner, 'USAGE')
             OR pg_has_role((SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE')
             OR CASE WHEN current_setting('server_version_num')::int >= 170000
                  THEN has_table_privilege(c.oid, 'MAINTAIN') ELSE false END AS owner
    FROM pg_class c WHERE c.oid = (quote_ident($1) || '.queue_messages')::regclass`,
  /** Empties the ring's older slots of queue_messages, moving what is left in them (see ring-rotation.ts). */
  rotate: `SELECT truncated, busy, moved FROM ${s}.rotate_queue_messages(NULL, 5000, $1)`,
  /** Not truncated: truncation takes a lock that would hold the claims back. */
  trickleVacuum: `VACUUM (SKIP_LOCKED, TRUNCATE false) ${s}.queue_messages`,
  /** Group buckets that have refilled to the brim say nothing a missing row does not. */
  purgeBuckets: `
    DELETE FROM ${s}.queue_buckets b USING ${s}.queues q
    WHERE b.queue = $1 AND q.name = b.queue AND b.group_key <> ''
      AND (q.group_rate_per_second IS NULL
           OR ${s}.bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second,
                ${s}.bucket_burst(q.group_burst, q.group_rate_per_second), now())
              >= ${s}.bucket_burst(q.group_burst, q.group_rate_per_second))`,
}));

