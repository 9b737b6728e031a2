import { SagaboxError } from '@sagabox/core';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Returns a saga id in its stored (lower-case) form, or throws before any SQL runs:
 * saga ids are UUIDs, and PostgreSQL would otherwise reject the text and abort the
 * caller's transaction.
 * @throws {SagaboxError} `INVALID_OPTIONS`
 */
export function checkSagaId(id: unknown): string {
  if (typeof id !== 'string' || !UUID.test(id)) {
    throw new SagaboxError('INVALID_OPTIONS', `saga id ${describe(id)} is not a UUID`, { details: { sagaId: describe(id) } });
  }
  return id.toLowerCase();
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 100));
  if (typeof value === 'bigint') return `${value}n`;
  return typeof value === 'object' || typeof value === 'function' || typeof value === 'symbol' ? `(a ${typeof value})` : String(value);
}
