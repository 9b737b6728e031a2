import fc from 'fast-check';

const WELL_FORMED = /^[a-z_][a-z0-9_]*$/;

/**
 * A `schema` option for property tests of bad input: the real schema, or a value
 * that must be refused before any SQL. A well-formed name of a schema that does
 * not exist is left out, from `other` as well: it is not bad input, its SQL fails.
 */
export function schemaOption(other: fc.Arbitrary<unknown>, strings: fc.Arbitrary<string> = fc.string()): fc.Arbitrary<unknown> {
  const badName = (v: unknown) => typeof v !== 'string' || !WELL_FORMED.test(v);
  return fc.oneof(fc.constant('sagabox'), strings.filter(badName), other.filter(badName));
}
