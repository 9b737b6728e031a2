import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { topicMatcher, topicPatternRegex } from '@sagabox/core/extension';
import { useDatabase } from '../support/test-pool.js';

const { pool } = await useDatabase();
const p = pool(2);

// Few distinct segments, so that patterns and topics meet often.
const pattern = fc.array(fc.constantFrom('a', 'b', '*', '#'), { minLength: 1, maxLength: 7 }).map((s) => s.join('.'));
const topic = fc.array(fc.constantFrom('a', 'b', 'c'), { minLength: 1, maxLength: 9 }).map((s) => s.join('.'));

describe('topic patterns', () => {
  it('the relay (JS) and direct routes (PostgreSQL regex) agree on every pattern and topic', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(pattern, topic), { minLength: 1, maxLength: 100 }), async (pairs) => {
        // The same expression publish uses for direct routes: ('.' || topic) ~ topic_regex.
        const { rows } = await p.query<{ m: boolean }>(
          `SELECT ('.' || t) ~ r AS m FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS x(t, r, i) ORDER BY i`,
          [pairs.map(([, t]) => t), pairs.map(([pat]) => topicPatternRegex(pat))],
        );
        pairs.forEach(([pat, t], i) => {
          expect({ pattern: pat, topic: t, js: topicMatcher(pat)(t) }).toEqual({ pattern: pat, topic: t, js: rows[i]!.m });
        });
      }),
      { numRuns: 150 },
    );
  });

  it('matches in time linear in the topic: many # against the longest topic take milliseconds', () => {
    const longTopic = Array.from({ length: 127 }, () => 'a').join('.') + '.y'; // 255 characters, no 'z'
    expect(longTopic.length).toBeLessThanOrEqual(255);
    for (const hashes of [5, 8, 20]) {
      const match = topicMatcher(['a', ...Array.from({ length: hashes }, () => '#'), 'z'].join('.'));
      // CPU time, not wall time: a loaded machine may preempt the process for longer than
      // the walk takes. A backtracking matcher took 3.5 s here with five '#'; the NFA walk
      // takes well under a millisecond.
      const t0 = process.cpuUsage();
      expect(match(longTopic)).toBe(false);
      const used = process.cpuUsage(t0);
      expect((used.user + used.system) / 1_000).toBeLessThan(250);
    }
    expect(topicMatcher('a.#.#.#.#.#.z')(`${longTopic.slice(0, -2)}.z`)).toBe(true);
  });

  it('keeps the AMQP meaning of * and #', () => {
    const cases: [string, string, boolean][] = [
      ['orders.*', 'orders.created', true], ['orders.*', 'orders', false], ['orders.*', 'orders.a.b', false],
      ['orders.#', 'orders', true], ['orders.#', 'orders.a.b', true], ['#', 'x', true], ['#.b', 'b', true],
      ['a.#.b', 'a.b', true], ['a.#.b', 'a.x.y.b', true], ['a.#.b', 'a.x.y', false], ['*.#', 'a', true], ['a.*.#', 'a', false],
    ];
    for (const [pat, t, want] of cases) expect([pat, t, topicMatcher(pat)(t)]).toEqual([pat, t, want]);
  });
});
