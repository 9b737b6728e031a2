import { SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { outboxChannel } from '../shared/channels.js';
import { describeValue } from '../shared/describe-value.js';
import { DEFAULT_SCHEMA, validateSchemaName } from '../shared/schema-name.js';
import { isStorableText } from '../publish/message-label.js';
import { halfMessageSql } from '../half-messages/half-message-sql.js';
import type { HalfMessageDecisionRecord } from '../half-messages/half-message-admin.js';

/** Options of {@link decideHalfMessage}. */
export interface OperatorDecisionOptions {
  /** Commit (deliver it) or roll back (drop it). */
  decision: 'commit' | 'rollback';
  /** Who decides: an operator's name, 1-255 characters. */
  by: string;
  /** Why, 1-2,000 characters (an external reference, a ticket). */
  reason: string;
  /** sagabox schema. Default `'sagabox'`. */
  schema?: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Commits or rolls back a prepared half message by hand -- when its producer is gone and
 * no checker can answer -- recorded in its decision history with source `operator` and
 * the detail `<by>: <reason>`. Unlike the producer's idempotent calls, an operator's
 * decision is refused for a message already decided, even the same way: the operator
 * learns that someone else decided first. Waits for a relay checking this very message.
 *
 * @throws {SagaboxError} `INVALID_OPTIONS` for a bad id, decision, `by` or `reason` (before any SQL);
 *   `HALF_MESSAGE_ALREADY_DECIDED` when it was committed, rolled back or dead-lettered
 *   as unresolved (`details.decision` says which); `NOT_FOUND` when it was never prepared.
 * @example
 * await decideHalfMessage(pool, id, { decision: 'commit', by: 'alice', reason: 'PSP shows capture ch_123' });
 */
export async function decideHalfMessage(db: Executor, id: string, options: OperatorDecisionOptions): Promise<HalfMessageDecisionRecord> {
  const problems: string[] = [];
  if (!(typeof id === 'string' && UUID.test(id))) problems.push(`id must be a UUID, got ${describeValue(id)}`);
  if (typeof options !== 'object' || options === null) problems.push('options must be an object with decision, by and reason');
  else {
    if (options.decision !== 'commit' && options.decision !== 'rollback') problems.push("decision must be 'commit' or 'rollback'");
    if (!(typeof options.by === 'string' && options.by.length >= 1 && options.by.length <= 255 && isStorableText(options.by))) {
      problems.push('by must be a string of 1 to 255 characters');
    }
    if (!(typeof options.reason === 'string' && options.reason.length >= 1 && options.reason.length <= 2_000 && isStorableText(options.reason))) {
      problems.push('reason must be a string of 1 to 2,000 characters');
    }
  }
  if (problems.length > 0) throw new SagaboxError('INVALID_OPTIONS', `decideHalfMessage: ${problems.join('; ')}`, { details: { problems } });
  const schema = validateSchemaName(options.schema ?? DEFAULT_SCHEMA);
  const messageId = id.toLowerCase();
  const run = toRunQuery(db);
  // The producer's own commit and rollback, recorded as the operator's, waking the relay.
  const sql = halfMessageSql(schema);
  // A second pass only when a prepare committed between our statement and the lookup.
  for (let pass = 0; pass < 2; pass++) {
    const [r] = await run<{ message_id: string; topic: string; decision: 'commit' | 'rollback'; source: 'operator'; detail: string; decided_at: Date }>(
      sql[options.decision],
      [messageId, `${options.by}: ${options.reason}`, 'operator', outboxChannel(schema)],
    );
    if (r) return { messageId: r.message_id, topic: r.topic, decision: r.decision, source: r.source, detail: r.detail, decidedAt: r.decided_at };
    const [seen] = await run<{ state: 'prepared' | null; decided: string | null; known: boolean }>(sql.lookup, [messageId]);
    if (seen?.decided) {
      throw new SagaboxError(
        'HALF_MESSAGE_ALREADY_DECIDED',
        `half message ${messageId} was already decided (${seen.decided}); the operator's ${options.decision} is refused`,
        { details: { id: messageId, decision: seen.decided, attempted: options.decision } },
      );
    }
    if (seen?.state !== 'prepared') break;
  }
  throw new SagaboxError('NOT_FOUND', `no prepared half message ${messageId}`, { details: { id: messageId } });
}
