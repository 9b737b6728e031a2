import { SagaboxError } from './errors.js';

/**
 * Describes where a connection string points, without its password: `host:port/database`.
 *
 * @example
 * describeConnectionTarget('postgres://app:secret@db.internal:6432/orders') // => 'db.internal:6432/orders'
 */
export function describeConnectionTarget(connectionString: string | undefined): string {
  if (connectionString === undefined) return 'the configured database';
  try {
    const url = new URL(connectionString);
    const host = url.searchParams.get('host') ?? (decodeURIComponent(url.hostname) || 'localhost');
    const port = url.port || '5432';
    const database = decodeURIComponent(url.pathname.replace(/^\//, ''));
    return `${host}:${port}${database ? `/${database}` : ''}`;
  } catch {
    return 'the configured database';
  }
}

/**
 * Turns a failed connection attempt into a `DATABASE_UNREACHABLE` error with one
 * line of message naming host, port and database (never the password) and the reason.
 *
 * @param err - what `pool.connect()` threw; kept as `cause`.
 * @param connectionString - the connection string tried, if known.
 */
export function databaseUnreachableError(err: unknown, connectionString?: string): SagaboxError {
  const target = describeConnectionTarget(connectionString);
  return new SagaboxError(
    'DATABASE_UNREACHABLE',
    `cannot connect to PostgreSQL at ${target}: ${connectionFailureReason(err)}`,
    { cause: err, details: { target } },
  );
}

function connectionFailureReason(err: unknown): string {
  // Node reports a refused "localhost" (tried on ::1 and 127.0.0.1) as an
  // AggregateError with an empty message; its parts carry the code.
  const first = err instanceof AggregateError ? err.errors[0] : err;
  if (typeof first === 'object' && first !== null) {
    const { code, message } = first as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    if (typeof message === 'string' && message !== '') return message.split('\n')[0] ?? message;
  }
  return String(first);
}
