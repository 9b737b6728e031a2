import { SagaboxError } from './errors.js';
import { describeValue } from './describe-value.js';

/** The schema sagabox uses when none is given. */
export const DEFAULT_SCHEMA = 'sagabox';

// Lower-case letters, digits and underscores, starting with a letter or underscore,
// at most 63 bytes (Postgres' NAMEDATALEN - 1). Narrower than what Postgres accepts
// on purpose: such names never need case folding and can be quoted without surprises.
const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * Checks a schema name and returns it double-quoted for use in SQL text.
 * This is the only value sagabox ever puts into SQL text; everything else is a bind parameter.
 *
 * @throws {SagaboxError} `INVALID_SCHEMA_NAME` when the name is not a plain identifier.
 * @example
 * quoteSchema('sagabox') // => '"sagabox"'
 * quoteSchema('x; drop table y') // throws INVALID_SCHEMA_NAME
 */
export function quoteSchema(schema: unknown): string {
  return `"${validateSchemaName(schema)}"`;
}

/** Returns `schema` unchanged when it is a valid sagabox schema name; throws otherwise. */
export function validateSchemaName(schema: unknown): string {
  if (typeof schema !== 'string' || !IDENTIFIER.test(schema) || schema.startsWith('pg_')) {
    throw new SagaboxError(
      'INVALID_SCHEMA_NAME',
      `invalid schema name ${describeValue(schema)}: use 1-63 lower-case letters, digits or underscores, starting with a letter or underscore, not starting with "pg_"`,
      { details: { schema } },
    );
  }
  return schema;
}
