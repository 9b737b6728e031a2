import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MAX_HEADERS_BYTES,
  MAX_PAYLOAD_DEPTH,
  MESSAGE_TIME_RANGE,
  publish,
  SagaboxError,
  type OutboxMessage,
  type PublishOptions,
  type SagaboxErrorCode,
} from '@sagabox/core';
import { useDatabase } from '../support/test-pool.js';
import { attemptInRollback } from '../support/counting-client.js';
import { schemaOption } from '../support/schema-option.js';

const { pool } = await useDatabase();
const p = pool(2);
const raw = await p.connect();
afterAll(() => raw.release());

const ENVELOPE_CODES: readonly SagaboxErrorCode[] = ['INVALID_TOPIC', 'INVALID_MESSAGE', 'INVALID_HEADERS', 'INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE', 'INVALID_OPTIONS'];

interface StoredRow {
  id: string;
  topic: string;
  key: string | null;
  group_key: string | null;
  priority: number;
  payload: string;
  headers: string;
  run_at: Date | null;
  expires_at: Date | null;
}

/**
 * Publishes inside a transaction of its own and reports what happened: the stored row
 * (read back inside the same transaction), or the error, with how many statements the
 * failed call ran and whether the transaction still works after it.
 */
async function attempt(
  messages: OutboxMessage | OutboxMessage[],
  options?: PublishOptions,
): Promise<{ ok: true; rows: StoredRow[] } | { ok: false; error: unknown; queries: number }> {
  const outcome = await attemptInRollback(raw, async (db) => {
    const { ids } = await publish(db, messages, options);
    const { rows } = await raw.query<StoredRow>(
      `SELECT id, topic, key, group_key, priority, payload::text AS payload, headers::text AS headers, run_at, expires_at
       FROM sagabox.outbox WHERE id = ANY($1::uuid[]) ORDER BY seq`,
      [ids],
    );
    return rows;
  });
  return outcome.ok ? { ok: true, rows: outcome.value } : outcome;
}

function expectTypedRefusal(outcome: { ok: false; error: unknown; queries: number }, codes: readonly SagaboxErrorCode[] = ENVELOPE_CODES): void {
  if (!(outcome.error instanceof SagaboxError)) throw new Error(`expected a SagaboxError, got ${String(outcome.error)}`);
  expect(codes).toContain(outcome.error.code);
  expect(outcome.queries).toBe(0);
}

/** What JSON (and so jsonb) makes of a value: the form a payload must come back in. */
const jsonForm = (v: unknown): unknown => JSON.parse(JSON.stringify(v)) as unknown;

// Characters PostgreSQL treats specially mixed into ordinary ones: NUL, lone
// surrogates of both halves, a backslash followed by "u0000" as text, quotes.
const trickyChar = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.constantFrom('\u0000', '\ud800', '\udbff', '\udc00', '\udfff', '\\', 'u0000', '\\u0000', '"', '😀', '.') },
);
const trickyString = fc.string({ unit: trickyChar, maxLength: 12 });
const uuid = fc.uuid();
const anyValue = fc.anything({
  key: trickyString,
  values: [trickyString, fc.double(), fc.bigInt(), fc.constant(undefined), fc.constant(null), fc.boolean()],
  maxDepth: 3,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withSparseArray: true,
  withTypedArray: true,
});

describe('publish: every envelope either round-trips or is refused with a typed error before any SQL', () => {
  it('JSON payloads with any characters: stored unchanged, or INVALID_PAYLOAD for NUL and lone surrogates', async () => {
    const payload = fc.jsonValue({ maxDepth: 4, stringUnit: trickyChar } as Parameters<typeof fc.jsonValue>[0]);
    await fc.assert(
      fc.asyncProperty(payload, async (value) => {
        const outcome = await attempt({ topic: 'props.json', payload: value });
        if (outcome.ok) {
          expect(JSON.parse(outcome.rows[0]!.payload)).toEqual(jsonForm(value));
        } else {
          expectTypedRefusal(outcome, ['INVALID_PAYLOAD']);
          expect(JSON.stringify(value)).toMatch(/(?<!\\)(\\\\)*\\u(0000|d[89a-f])/);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('any JavaScript value as payload: stored as its JSON form, or refused with a typed error', async () => {
    await fc.assert(
      fc.asyncProperty(anyValue, async (value) => {
        const outcome = await attempt({ topic: 'props.any', payload: value });
        if (outcome.ok) expect(JSON.parse(outcome.rows[0]!.payload)).toEqual(jsonForm(value));
        else expectTypedRefusal(outcome, ['INVALID_PAYLOAD', 'PAYLOAD_TOO_LARGE']);
      }),
      { numRuns: 300 },
    );
  });

  it('any topic, id, key, group, priority, headers and times: every field round-trips, or a typed refusal', async () => {
    const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
    const message = fc.record(
      {
        topic: fc.oneof(trickyString, fc.constantFrom('orders.created', 'a.b-c:d_e'), anyValue),
        id: maybe(fc.oneof(uuid, uuid.map((u) => u.toUpperCase()), trickyString, anyValue)),
        key: maybe(fc.oneof(trickyString, fc.string({ minLength: 250, maxLength: 260 }), anyValue, fc.constant(null))),
        group: maybe(fc.oneof(trickyString, anyValue, fc.constant(null))),
        priority: maybe(fc.oneof(fc.integer({ min: -40_000, max: 40_000 }), fc.double(), anyValue)),
        headers: maybe(fc.oneof(fc.dictionary(trickyString, fc.oneof(trickyString, anyValue), { maxKeys: 4 }), anyValue)),
        delayMs: maybe(fc.oneof(fc.nat(), fc.double(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 1e16, -1), anyValue)),
        ttlMs: maybe(fc.oneof(fc.nat(), fc.double(), fc.constantFrom(Number.MAX_SAFE_INTEGER, 1e16), anyValue)),
        availableAt: maybe(fc.oneof(fc.date(), fc.constantFrom(new Date(-8.64e15), new Date(8.64e15), new Date(Number.NaN)), anyValue)),
        expiresAt: maybe(fc.oneof(fc.date(), fc.constantFrom(new Date(-8.64e15), new Date(8.64e15)), anyValue)),
        payload: fc.jsonValue({ maxDepth: 2 }),
      },
      { requiredKeys: ['topic', 'payload'] },
    ) as fc.Arbitrary<OutboxMessage>;
    await fc.assert(
      fc.asyncProperty(message, async (m) => {
        const outcome = await attempt(m);
        if (!outcome.ok) {
          expectTypedRefusal(outcome);
          return;
        }
        const row = outcome.rows[0]!;
        expect(row.topic).toBe(m.topic);
        if (m.id !== undefined) expect(row.id).toBe(m.id.toLowerCase());
        expect(row.key).toBe(m.key ?? null);
        expect(row.group_key).toBe(m.group ?? null);
        expect(row.priority).toBe(m.priority ?? 0);
        expect(JSON.parse(row.headers)).toEqual(jsonForm(m.headers ?? {}));
        if (m.availableAt) expect(row.run_at?.getTime()).toBe(m.availableAt.getTime());
        if (m.expiresAt) expect(row.expires_at?.getTime()).toBe(m.expiresAt.getTime());
      }),
      { numRuns: 400 },
    );
  });

  it('any publish options: used, or INVALID_OPTIONS before any SQL', async () => {
    const options = fc.record(
      {
        schema: schemaOption(anyValue, trickyString),
        maxPayloadBytes: fc.oneof(fc.integer({ min: -5, max: 5_000_000 }), fc.double(), fc.constantFrom(Number.NaN, -1, 0, Infinity), anyValue),
        notify: fc.oneof(fc.boolean(), fc.constant('always'), anyValue),
        notifyThrottleMs: fc.oneof(fc.nat(100_000), fc.double(), anyValue),
        preparedStatements: fc.oneof(fc.boolean(), anyValue),
      },
      { requiredKeys: [] },
    ) as fc.Arbitrary<PublishOptions>;
    await fc.assert(
      fc.asyncProperty(options, async (o) => {
        const outcome = await attempt({ topic: 'props.options', payload: { n: 1 } }, o);
        if (outcome.ok) expect(outcome.rows).toHaveLength(1);
        else expectTypedRefusal(outcome, ['INVALID_OPTIONS', 'INVALID_SCHEMA_NAME', 'PAYLOAD_TOO_LARGE']);
      }),
      { numRuns: 200 },
    );
  });
});

describe('publish: the bad inputs of the hardening corpus', () => {
  const refused = async (m: OutboxMessage | OutboxMessage[], code: SagaboxErrorCode, message?: RegExp, options?: PublishOptions) => {
    const outcome = await attempt(m, options);
    if (outcome.ok) throw new Error(`expected ${code}, but publish stored ${JSON.stringify(outcome.rows)}`);
    expectTypedRefusal(outcome, [code]);
    if (message) expect((outcome.error as Error).message).toMatch(message);
  };

  it('refuses lone surrogates in payload, header value and key, and NUL in a header name', async () => {
    await refused({ topic: 't.x', payload: { s: 'a\ud800b' } }, 'INVALID_PAYLOAD', /unpaired UTF-16 surrogate/);
    await refused({ topic: 't.x', payload: { ['k\udc00']: 1 } }, 'INVALID_PAYLOAD', /unpaired/);
    await refused({ topic: 't.x', payload: 1, headers: { h: '\udfff' } }, 'INVALID_HEADERS');
    await refused({ topic: 't.x', payload: 1, key: 'order-\ud800' }, 'INVALID_MESSAGE', /key/);
    await refused({ topic: 't.x', payload: 1, group: 'g\u0000' }, 'INVALID_MESSAGE', /group/);
    await refused({ topic: 't.x', payload: 1, headers: { 'a\u0000b': 'v' } }, 'INVALID_HEADERS', /header name/);
    await refused({ topic: 't.x', payload: 'a\u0000' }, 'INVALID_PAYLOAD', /NUL/);
  });

  it('accepts a backslash followed by u0000 as text, and stores it unchanged', async () => {
    const outcome = await attempt({ topic: 't.x', payload: { path: 'C:\\u0000dir', more: '\\\\u0000', key: '\\u0000' }, headers: { h: '\\u0000' } });
    expect(outcome.ok).toBe(true);
    if (outcome.ok) {
      expect(JSON.parse(outcome.rows[0]!.payload)).toEqual({ path: 'C:\\u0000dir', more: '\\\\u0000', key: '\\u0000' });
      expect(JSON.parse(outcome.rows[0]!.headers)).toEqual({ h: '\\u0000' });
    }
  });

  it('refuses times outside the storable range, whether given or computed', async () => {
    await refused({ topic: 't.x', payload: 1, delayMs: Number.MAX_SAFE_INTEGER }, 'INVALID_MESSAGE', /delayMs/);
    await refused({ topic: 't.x', payload: 1, ttlMs: 1e16 }, 'INVALID_MESSAGE', /ttlMs/);
    await refused({ topic: 't.x', payload: 1, availableAt: new Date(-8.64e15) }, 'INVALID_MESSAGE', /availableAt/);
    await refused({ topic: 't.x', payload: 1, expiresAt: new Date(MESSAGE_TIME_RANGE.max.getTime() + 1) }, 'INVALID_MESSAGE', /expiresAt/);
    const edge = await attempt({ topic: 't.x', payload: 1, availableAt: MESSAGE_TIME_RANGE.min, expiresAt: MESSAGE_TIME_RANGE.max });
    expect(edge.ok && [edge.rows[0]!.run_at?.getTime(), edge.rows[0]!.expires_at?.getTime()]).toEqual([
      MESSAGE_TIME_RANGE.min.getTime(),
      MESSAGE_TIME_RANGE.max.getTime(),
    ]);
  });

  it('limits the headers to MAX_HEADERS_BYTES', async () => {
    await refused({ topic: 't.x', payload: 1, headers: { big: 'x'.repeat(4 * 1024 * 1024) } }, 'INVALID_HEADERS', /over the limit of 16384 bytes/);
    const fits = await attempt({ topic: 't.x', payload: 1, headers: { big: 'x'.repeat(MAX_HEADERS_BYTES - 20) } });
    expect(fits.ok).toBe(true);
    await refused({ topic: 't.x', payload: 1, headers: new Map([['a', 'b']]) as unknown as Record<string, string> }, 'INVALID_HEADERS');
  });

  it('says what is wrong with a payload nested 10,000 levels deep, and takes one at the limit', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = { a: deep };
    await refused({ topic: 't.x', payload: deep }, 'INVALID_PAYLOAD', new RegExp(`nested too deeply: more than ${MAX_PAYLOAD_DEPTH} levels`));
    let over: unknown = 1;
    for (let i = 0; i <= MAX_PAYLOAD_DEPTH; i++) over = [over];
    await refused({ topic: 't.x', payload: over }, 'INVALID_PAYLOAD', /nested too deeply/);
    let atLimit: unknown = 1;
    for (let i = 0; i < MAX_PAYLOAD_DEPTH; i++) atLimit = [atLimit];
    expect((await attempt({ topic: 't.x', payload: atLimit })).ok).toBe(true);
  });

  it('refuses maxPayloadBytes NaN, -1 and other non-limits as INVALID_OPTIONS, not as an off switch or PAYLOAD_TOO_LARGE', async () => {
    for (const maxPayloadBytes of [Number.NaN, -1, 0, 1.5, Infinity, '10' as unknown as number]) {
      await refused({ topic: 't.x', payload: 'x'.repeat(100) }, 'INVALID_OPTIONS', /maxPayloadBytes/, { maxPayloadBytes });
    }
    await refused({ topic: 't.x', payload: 'x'.repeat(100) }, 'PAYLOAD_TOO_LARGE', undefined, { maxPayloadBytes: 50 });
  });

  it('refuses a Map or Set in a payload instead of storing {}', async () => {
    await refused({ topic: 't.x', payload: { m: new Map([['a', 1]]) } }, 'INVALID_PAYLOAD', /Map/);
    await refused({ topic: 't.x', payload: new Set([1]) }, 'INVALID_PAYLOAD', /Set/);
  });

  it('checks a whole batch before writing any of it', async () => {
    const outcome = await attempt([{ topic: 't.x', payload: 1 }, { topic: 't.x', payload: 2, key: '\ud800' }]);
    expect(outcome.ok).toBe(false);
    if (!outcome.ok) expectTypedRefusal(outcome, ['INVALID_MESSAGE']);
  });
});
