import { createHash } from 'node:crypto';

const names = new Map<string, string>();

/**
 * A named (server-side prepared) form of a hot query: Postgres parses and plans it once
 * per connection instead of on every call, which saves about half a millisecond on a
 * worker's claim. The name is derived from the text, so two texts never share a name.
 * (Behind PgBouncer in transaction mode this needs PgBouncer 1.21+ with
 * `max_prepared_statements`; relays and workers there run with `listen: false` anyway.)
 */
export function prepared(text: string, values: unknown[]): { name: string; text: string; values: unknown[] } {
  let name = names.get(text);
  if (name === undefined) {
    name = `sagabox_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    names.set(text, name);
  }
  return { name, text, values };
}
