import { SagaboxError } from '../shared/errors.js';
import { describeValue } from '../shared/describe-value.js';

// Dot-separated segments of letters, digits, '_', '-' or ':'. Dots separate the
// segments that route patterns ('orders.*', 'orders.#') match on.
const TOPIC = /^[A-Za-z0-9_:-]+(\.[A-Za-z0-9_:-]+)*$/;
const QUEUE = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Longest topic name accepted, in characters. */
export const MAX_TOPIC_LENGTH = 255;

/**
 * Returns `topic` when it is a valid topic name: 1-255 characters, dot-separated
 * segments of letters, digits, `_`, `-` or `:`.
 * @throws {SagaboxError} `INVALID_TOPIC`
 */
export function validateTopic(topic: unknown): string {
  if (typeof topic !== 'string' || topic.length > MAX_TOPIC_LENGTH || !TOPIC.test(topic)) {
    throw new SagaboxError(
      'INVALID_TOPIC',
      `invalid topic ${describeValue(topic)}: use dot-separated segments of letters, digits, "_", "-" or ":", at most ${MAX_TOPIC_LENGTH} characters`,
      { details: { topic } },
    );
  }
  return topic;
}

/**
 * Returns `queue` when it is a valid queue name: 1-128 letters, digits, `_`, `.`, `:` or `-`.
 * @throws {SagaboxError} `INVALID_QUEUE_NAME`
 */
export function validateQueueName(queue: unknown): string {
  if (typeof queue !== 'string' || !QUEUE.test(queue)) {
    throw new SagaboxError(
      'INVALID_QUEUE_NAME',
      `invalid queue name ${describeValue(queue)}: use 1-128 letters, digits, "_", ".", ":" or "-"`,
      { details: { queue } },
    );
  }
  return queue;
}

/**
 * Compiles a topic pattern to a matcher. `*` matches exactly one segment, `#` matches
 * zero or more segments (as in AMQP topic exchanges); anything else matches itself.
 * @example
 * topicMatcher('orders.*')('orders.created') // true
 * topicMatcher('orders.#')('orders')         // true
 * topicMatcher('orders.#')('orders.a.b')     // true
 */
export function topicMatcher(pattern: string): (topic: string) => boolean {
  const segments = patternSegments(pattern);
  if (!pattern.includes('*') && !pattern.includes('#')) return (topic) => topic === pattern;
  const n = segments.length;
  // A set-of-states walk over the pattern (an NFA run, as a regex engine without
  // backtracking does): `at[p]` says the topic's segments so far can end with the
  // pattern at position p. Each topic segment costs O(pattern length), so a pattern of
  // many `#` cannot make matching exponential in the topic's length.
  return (topic) => {
    let at = new Uint8Array(n + 1);
    let next = new Uint8Array(n + 1);
    at[0] = 1;
    close(at);
    for (const seg of topic.split('.')) {
      next.fill(0);
      let any = false;
      for (let p = 0; p < n; p++) {
        if (!at[p]) continue;
        const s = segments[p];
        if (s === '#') {
          next[p] = 1; // '#' takes this segment and may take more
          any = true;
        } else if (s === '*' || s === seg) {
          next[p + 1] = 1;
          any = true;
        }
      }
      if (!any) return false;
      close(next);
      [at, next] = [next, at];
    }
    return at[n] === 1;
  };
  /** A '#' may also match no segment: being before it means being after it too. */
  function close(states: Uint8Array): void {
    for (let p = 0; p < n; p++) if (states[p] && segments[p] === '#') states[p + 1] = 1;
  }
}

/** Splits a topic pattern into its segments, checking each. */
function patternSegments(pattern: unknown): string[] {
  const segments = typeof pattern === 'string' && pattern.length <= MAX_TOPIC_LENGTH ? pattern.split('.') : [''];
  for (const s of segments) {
    if (s !== '*' && s !== '#' && !/^[A-Za-z0-9_:-]+$/.test(s)) {
      throw new SagaboxError('INVALID_TOPIC', `invalid topic pattern ${describeValue(pattern)}`, {
        details: { pattern },
      });
    }
  }
  return segments;
}

/**
 * Compiles a topic pattern to an anchored POSIX regular expression over `'.' || topic`
 * (each segment then starts with a dot), with the same meaning as {@link topicMatcher}:
 * this is what direct routes store, so Postgres can match topics at publish time.
 * Segments are checked to contain only letters, digits, `_`, `-` and `:`, none of which
 * is special in a regular expression outside brackets.
 * @throws {SagaboxError} `INVALID_TOPIC` for a malformed pattern.
 * @example topicPatternRegex('orders.#') // '^\\.orders(\\.[^.]+)*$'
 */
export function topicPatternRegex(pattern: string): string {
  const parts = patternSegments(pattern).map((s) => (s === '*' ? '\\.[^.]+' : s === '#' ? '(\\.[^.]+)*' : `\\.${s}`));
  return `^${parts.join('')}$`;
}
