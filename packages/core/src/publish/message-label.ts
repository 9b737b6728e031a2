// A UTF-16 surrogate that is not half of a pair. PostgreSQL rejects it in jsonb and
// replaces it in text, which would make two different keys one.
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * True when `text` can be stored by PostgreSQL as it is: no NUL character (text and
 * jsonb cannot hold one) and no unpaired UTF-16 surrogate.
 */
export function isStorableText(text: string): boolean {
  return !text.includes('\u0000') && !LONE_SURROGATE.test(text);
}

/**
 * True for a valid ordering key or flow-control group: a string of 1-255 characters
 * that {@link isStorableText} accepts. Checked by `publish` before it writes, and by
 * the relay for outbox rows that did not come through it.
 */
export function isMessageLabel(value: unknown): value is string {
  return typeof value === 'string' && value.length >= 1 && value.length <= 255 && isStorableText(value);
}
