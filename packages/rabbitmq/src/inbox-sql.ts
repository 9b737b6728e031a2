/**
 * The inbox statement of a batch: one row per (consumer, message id), one round trip
 * for the whole batch. Ids returned are those handled for the first time; the others
 * were handled before (a redelivery) and their effect is skipped.
 */
export const brokerInboxSql = (schema: string) => ({
  recordMany: `INSERT INTO ${schema}.inbox (consumer, message_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING RETURNING message_id::text`,
});
