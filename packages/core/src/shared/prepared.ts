import { createHash } from 'node:crypto';

/** A statement's text and the name it is prepared under, as node-postgres reads them. */
export interface NamedStatement {
  readonly name: string;
  readonly text: string;
}

const statements = new Map<string, NamedStatement>();

/**
 * The named (server-side prepared) form of a hot statement: Postgres parses and plans it
 * once per connection instead of on every call, which saves about half a millisecond on
 * a worker's claim. The name is derived from the text, so two texts never share a name.
 * (Behind PgBouncer in transaction mode this needs PgBouncer 1.21+ with
 * `max_prepared_statements`; relays and workers there run with `listen: false` anyway.)
 *
 * One object per text, with no own properties: node-postgres copies a query config's own
 * properties, descriptors and all, on every query, and finds `name` and `text` through
 * the prototype. Pass the values beside it: `client.query(namedStatement(text), values)`.
 */
export function namedStatement(text: string): NamedStatement {
  let statement = statements.get(text);
  if (statement === undefined) {
    const name = `sagabox_${createHash('sha1').update(text).digest('hex').slice(0, 20)}`;
    statement = Object.create(Object.freeze({ name, text })) as NamedStatement;
    statements.set(text, statement);
  }
  return statement;
}

/**
 * {@link namedStatement} with its values, as one query config (for `pipelined`,
 * which takes configs): `values` is its one own property.
 */
export function prepared(text: string, values: unknown[]): { name: string; text: string; values: unknown[] } {
  const config = Object.create(namedStatement(text)) as { name: string; text: string; values: unknown[] };
  config.values = values;
  return config;
}
