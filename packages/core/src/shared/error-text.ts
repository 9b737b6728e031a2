/**
 * An error as the one line stored in `last_error` / `dead_letters.error`: name and
 * message, cut at `maxLength` characters so a huge message cannot bloat a hot row.
 */
export function errorText(err: unknown, maxLength = 2_000): string {
  const text = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return text.length > maxLength ? `${text.slice(0, maxLength)}…` : text;
}
