import { randomUUID } from 'node:crypto';
import type { Variant } from '../harness/variant.js';

/** W1 (a): the business row alone; the ceiling every publish is measured against. */
export const businessOnly: Variant = {
  id: 'business_only',
  label: 'business row only',
  kind: 'floor',
  async install() {},
  async openPublisher() {
    return { async publish() {}, async close() {} };
  },
};

/** A W1 floor whose publish is one plain INSERT, its values made from the loop's counter. */
function insertFloor(id: string, label: string, sql: string, values: (n: number) => unknown[], name?: string): Variant {
  const statement = name === undefined ? sql : { name, text: sql };
  return {
    id,
    label,
    kind: 'floor',
    async install() {},
    async openPublisher() {
      return {
        async publish(client, n) {
          await client.query(statement, values(n));
        },
        async close() {},
      };
    },
  };
}

// The smallest message row's INSERT and values, shared by (b) and its prepared diagnostic.
const PLAIN_INSERT_SQL = 'INSERT INTO plain_messages (topic, payload) VALUES ($1, $2)';
const plainValues = (n: number): unknown[] => ['bench.noop', JSON.stringify({ n })];

/**
 * W1 (b): the business row plus the smallest message row, `(bigserial, topic text, payload
 * jsonb)`: the physical floor of writing a message, as issue 18 sets it.
 */
export const plainSecondInsert = insertFloor('plain_insert', 'business + plain INSERT', PLAIN_INSERT_SQL, plainValues);

/** W1 (b'): the floor of earlier runs, a row keyed by a client's UUID with a created_at; not in the ratios. */
export const plainUuidInsert = insertFloor(
  'plain_insert_uuid',
  'business + plain INSERT (UUID key, created_at)',
  'INSERT INTO plain_messages_uuid (id, topic, payload) VALUES ($1, $2, $3)',
  (n) => [randomUUID(), 'bench.noop', JSON.stringify({ n })],
);

/**
 * W1 diagnostic, not a floor of the ratios: (b) as a prepared statement, parsed and
 * planned once per connection as sagabox's publish statements are. Shows what preparing
 * alone is worth, apart from the row written.
 */
export const plainPreparedInsert = insertFloor(
  'plain_insert_prepared',
  'business + plain INSERT, prepared (diagnostic)',
  PLAIN_INSERT_SQL,
  plainValues,
  'bench_plain_insert',
);
