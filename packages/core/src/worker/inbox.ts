import type pg from 'pg';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { pipelined } from '../shared/pipelined.js';
import { prepared } from '../shared/prepared.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';

/**
 * The inbox: one row per (consumer, message id) that a consumer has handled. A handler
 * runs in the transaction that inserts its message's row, so a redelivered message finds
 * the row and has no second effect. Rows are purged after a retention window.
 */
export const inboxSql = (s: string) => ({
  recordOne: `INSERT INTO ${s}.inbox (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING message_id`,
  // One row back, the ids that were recorded already (normally none), rather than a row
  // per id recorded now: a batch of 200 would otherwise come back as 200 rows to parse.
  // The ids come back as they were sent, so the caller can compare them as strings.
  recordMany: `WITH recorded AS (INSERT INTO ${s}.inbox (consumer, message_id) SELECT $1, unnest($2::text[])::uuid ON CONFLICT DO NOTHING RETURNING message_id)
SELECT array(SELECT id FROM unnest($2::text[]) AS id WHERE id::uuid NOT IN (SELECT message_id FROM recorded)) AS seen`,
});

/** The ids of `messageIds` not in `seen` (the statement's one row): those recorded now. */
const recordedNow = (messageIds: readonly string[], seen: string[]): Set<string> => {
  if (seen.length === 0) return new Set(messageIds);
  const before = new Set(seen);
  const fresh = new Set<string>();
  for (const id of messageIds) if (!before.has(id)) fresh.add(id);
  return fresh;
};

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
 * await commitHandling(client);
 */
export async function recordInInbox(db: Executor, options: RecordInInboxOptions): Promise<boolean> {
  const run = toRunQuery(db);
  const rows = await run(inboxSql(quoteSchema(options.schema ?? DEFAULT_SCHEMA)).recordOne, [options.consumer, options.messageId], true);
  return rows.length === 1;
}

/** Options of {@link recordManyInInbox}. */
export interface RecordManyInInboxOptions {
  /** The consumer's name: each consumer handles a message once. */
  consumer: string;
  /** The messages' ids (UUIDs, no repeats); the result holds them as given. */
  messageIds: readonly string[];
  /** Schema holding sagabox's tables. Default `'sagabox'`. */
  schema?: string;
}

/**
 * {@link recordInInbox} for a batch, in one statement: records every id not yet
 * recorded for `consumer` and returns those (the ones whose effect should happen now).
 * Ids already in the inbox were handled before; skip them.
 *
 * @example
 * const fresh = await recordManyInInbox(client, { consumer: 'billing', messageIds: batch.map((m) => m.id) });
 * for (const m of batch) if (fresh.has(m.id)) await charge(client, m);
 */
export async function recordManyInInbox(db: Executor, options: RecordManyInInboxOptions): Promise<Set<string>> {
  if (options.messageIds.length === 0) return new Set();
  const run = toRunQuery(db);
  const rows = await run<{ seen: string[] }>(inboxSql(quoteSchema(options.schema ?? DEFAULT_SCHEMA)).recordMany, [options.consumer, options.messageIds], true);
  return recordedNow(options.messageIds, rows[0]!.seen);
}

/**
 * BEGIN and {@link recordManyInInbox} on `client` in one round trip (node-postgres's
 * pipeline mode, on this client only): opens the handling transaction and returns the
 * ids recorded now, whose effect should happen in it. With no ids it sends BEGIN alone.
 * On a rejection the transaction is aborted or never began: nothing was committed, and
 * the caller should release `client` as broken (`client.release(err)`), not reuse it.
 *
 * @example
 * const fresh = await beginWithInboxRecord(client, { consumer: 'billing', messageIds: batch.map((m) => m.id) });
 * for (const m of batch) if (fresh.has(m.id)) await charge(client, m);
 * await commitHandling(client);
 */
export async function beginWithInboxRecord(client: pg.PoolClient, options: RecordManyInInboxOptions): Promise<Set<string>> {
  if (options.messageIds.length === 0) {
    await client.query('BEGIN');
    return new Set();
  }
  const [, recorded] = await pipelined(client, [
    'BEGIN',
    prepared(inboxSql(quoteSchema(options.schema ?? DEFAULT_SCHEMA)).recordMany, [options.consumer, options.messageIds]),
  ]);
  return recordedNow(options.messageIds, (recorded!.rows as { seen: string[] }[])[0]!.seen);
}

/** The message {@link commitHandling} rejects with when the server rolled back instead. */
export const ROLLED_BACK_AT_COMMIT = 'the transaction had failed and was rolled back at commit (a statement in it failed, and the code that ran it went on without rethrowing)';

/**
 * COMMIT of a transaction that handled messages (their inbox rows and effects).
 * PostgreSQL answers the COMMIT of a transaction in which a statement failed with
 * ROLLBACK and no error, as when a handler caught a SQL error and carried on: nothing
 * was written. This rejects then, with {@link ROLLED_BACK_AT_COMMIT}, so the caller
 * never acknowledges a message whose handling was undone. A plain `COMMIT` would.
 *
 * @example
 * await client.query('BEGIN');
 * if (await recordInInbox(client, { consumer: 'billing', messageId: msg.id })) await charge(client, msg);
 * await commitHandling(client); // rejects if charge() swallowed a failed statement
 * await ackToBroker(msg);
 */
export async function commitHandling(client: pg.ClientBase): Promise<void> {
  if (!(await commitHandlingOrRolledBack(client))) throw new Error(ROLLED_BACK_AT_COMMIT);
}

/**
 * {@link commitHandling} for a consumer that tells the two apart: resolves to `false`
 * when the server rolled the transaction back at COMMIT, rejects on anything else (the
 * database away, a failed COMMIT).
 */
export async function commitHandlingOrRolledBack(client: pg.ClientBase): Promise<boolean> {
  const result = await client.query('COMMIT');
  return result.command !== 'ROLLBACK';
}
