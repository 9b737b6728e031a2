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
  /** Group buckets that have refilled to the brim say nothing a missing row does not. */
  purgeBuckets: `
    DELETE FROM ${s}.queue_buckets b USING ${s}.queues q
    WHERE b.queue = $1 AND q.name = b.queue AND b.group_key <> ''
      AND (q.group_rate_per_second IS NULL
           OR ${s}.bucket_level(b.tokens, b.refilled_at, q.group_rate_per_second,
                ${s}.bucket_burst(q.group_burst, q.group_rate_per_second), now())
              >= ${s}.bucket_burst(q.group_burst, q.group_rate_per_second))`,
}));

