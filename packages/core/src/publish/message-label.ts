/**
 * True for a valid ordering key or flow-control group: a string of 1-255 characters
 * without NUL (which PostgreSQL text cannot store). Checked by `publish` before it
 * writes, and by the relay for outbox rows that did not come through it.
 */
export function isMessageLabel(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 255 && !value.includes('\u0000');
}
