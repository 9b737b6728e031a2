import { toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';

/**
 * The inbox: one row per (consumer, message id) that a consumer has handled. A handler
 * runs in the transaction that inserts its message's row, so a redelivered message finds
 * the row and has no second effect. Rows are purged after a retention window.
 */
export const inboxSql = (s: string) => ({
  recordOne: `INSERT INTO ${s}.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING message_id`,
});

/** Options of {@link recordInInbox}. */
export interface RecordInInboxOptions {
  /** The consumer's name: each consumer handles a message once. */
  consumer: string;
  /** The message's id (a UUID). */
  messageId: string;
  /** Schema holding sagabox's tables. Default `'sagabox'`. */
  schema?: string;
}

/**
 * Records that `consumer` is handling `messageId`, inside the caller's transaction.
 * Returns `true` the first time and `false` when the message was already handled, in
 * which case the caller should skip its effect. Commit the transaction only after the
 * handler's own writes, so the record and the effect commit together.
 *
 * @example
 * await client.query('BEGIN');
 * if (await recordInInbox(client, { consumer: 'billing', messageId: msg.id })) await charge(client, msg);
 * await client.query('COMMIT');
 */
export async function recordInInbox(db: Executor, options: RecordInInboxOptions): Promise<boolean> {
  const run = toRunQuery(db);
  const rows = await run(inboxSql(quoteSchema(options.schema ?? DEFAULT_SCHEMA)).recordOne, [options.consumer, options.messageId], true);
  return rows.length === 1;
}
