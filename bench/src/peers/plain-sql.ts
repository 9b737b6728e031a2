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

/** W1 (b): the business row plus one comparable plain INSERT: the physical floor of writing a message. */
export const plainSecondInsert: Variant = {
  id: 'plain_insert',
  label: 'business + plain INSERT',
  kind: 'floor',
  async install() {},
  async openPublisher() {
    return {
      async publish(client, n) {
        await client.query('INSERT INTO plain_messages (id, topic, payload) VALUES ($1, $2, $3)', [
          randomUUID(),
          'bench.noop',
          JSON.stringify({ n }),
        ]);
      },
      async close() {},
    };
  },
};
