import { isMessageLabel } from '../publish/message-label.js';
import { validateTopic } from '../publish/topic-name.js';

/** The fields of a claimed outbox row that publish validates before it writes. */
export interface OutboxRowFields {
  topic: string;
  key: string | null;
  group_key: string | null;
  /** The row's headers as jsonb text. */
  headers: string;
}

/**
 * Why the relay cannot deliver a claimed outbox row as it stands, or null when it can.
 *
 * The outbox has no CHECK constraint (a fixed cost on every publish; see migrations/),
 * so a row that did not come through `publish`, `prepare` or a replay (one written by
 * hand, say) is checked here, and the relay dead-letters it as `invalid` with this
 * reason instead of handing a destination a message it would choke on.
 */
export function outboxRowProblem(row: OutboxRowFields): string | null {
  try {
    validateTopic(row.topic);
  } catch (err) {
    return (err as Error).message;
  }
  if (row.key !== null && !isMessageLabel(row.key)) return 'key must be 1-255 characters';
  if (row.group_key !== null && !isMessageLabel(row.group_key)) return 'group must be 1-255 characters';
  // jsonb prints an object with a leading '{' and anything else without one.
  if (!row.headers.startsWith('{')) return `headers must be a JSON object, not ${row.headers.slice(0, 80)}`;
  // Handlers are typed to receive string headers; publish never writes another kind.
  const headers = JSON.parse(row.headers) as Record<string, unknown>;
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value !== 'string') return `header ${JSON.stringify(name.slice(0, 80))} must be a string, not ${value === null ? 'null' : typeof value}`;
  }
  return null;
}
