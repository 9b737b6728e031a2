/** Default longest error text kept in `last_error` / `dead_letters.error`, in characters. */
export const MAX_ERROR_TEXT_LENGTH = 4_000;

const MAX_CAUSES = 3;

/**
 * An error as stored in `last_error` / `dead_letters.error`: `Name: message`, then the
 * stack's frames and up to three `Caused by:` errors (each with its frames), cut at
 * `maxLength` characters so a huge message or stack cannot bloat a hot row.
 * @param maxLength - longest text kept, in characters. Default {@link MAX_ERROR_TEXT_LENGTH}.
 */
export function errorText(err: unknown, maxLength = MAX_ERROR_TEXT_LENGTH): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth <= MAX_CAUSES && current !== undefined; depth++) {
    parts.push((depth === 0 ? '' : 'Caused by: ') + oneError(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  // PostgreSQL text cannot hold a NUL, and this text is written to a row.
  const text = parts.join('\n').replace(/\0/g, '\\0');
  return text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
}

function oneError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // The stack's first line is the message as it was when the error was made; name and
  // message are read now, and only the frames are taken from the stack.
  const frames = typeof err.stack === 'string' ? err.stack.split('\n').filter((line) => /^\s+at /.test(line)) : [];
  return [`${err.name}: ${err.message}`, ...frames].join('\n');
}
