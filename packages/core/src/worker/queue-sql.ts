import { statementsFor } from '../shared/statements.js';

/**
 * The worker's housekeeping statements for one schema ($1 is the queue); the claims are
 * in claim-sql.ts, the batch handler's statements in batch-sql.ts.
 */
export const queueSql = statementsFor((s) => ({
  /**
   * Lease rows of slots whose worker died without acking (they stopped counting when
   * they ran out, see flow_grant) and released rows of idle slots: a slot's next counted
   * claim writes its row again.
   */
  purgeLeases: `DELETE FROM ${s}.queue_leases WHERE queue = $1 AND locked_until <= now()`,
  /** Group buckets that have refilled to the brim say nothing a missing row does not. */
  purgeBuckets: `
    DELETE FROM ${s}.queue_buckets b USING ${s}.queues q
    WHERE b.queue = $1 AND q.name = b.queue AND b.group_key <> ''
      AND (q.group_rate_per_second IS NULL
           OR ${s}.bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second,
                ${s}.bucket_burst(q.group_burst, q.group_rate_per_second), now())
              >= ${s}.bucket_burst(q.group_burst, q.group_rate_per_second))`,
}));

