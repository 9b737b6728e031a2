import { InvalidOptionsError, SagaboxError } from '../shared/errors.js';
import { toRunQuery, type Executor } from '../shared/executor.js';
import { DEFAULT_SCHEMA, quoteSchema } from '../shared/schema-name.js';
import { validateQueueName } from '../publish/topic-name.js';
import type { AdminOptions } from '../admin/admin.js';
import { describeValue } from '../shared/describe-value.js';
import { DEFAULT_PRIORITY_AGING_MS, levelMsOf } from '../shared/claim-rank.js';
import { heldWindowOf } from '../shared/held.js';
import { eachSlot, eachSlotCount } from '../shared/queue-slots.js';

export { DEFAULT_PRIORITY_AGING_MS };
/** Largest count or rate a limit accepts. */
export const MAX_FLOW_LIMIT = 1_000_000;
/** Shortest and longest `priorityAgingMs` accepted, in milliseconds (100 ms to one day). */
export const PRIORITY_AGING_MS_RANGE = { min: 100, max: 86_400_000 } as const;

/**
 * Flow-control limits of one queue, enforced by every worker's claim across all
 * processes. `null` means "no limit" (or, for bursts, "the default").
 */
export interface QueueLimits {
  /** At most this many messages of the queue leased (being handled) at once. */
  maxInFlight: number | null;
  /** At most this many messages started per second (a token bucket). May be fractional, e.g. 0.5. */
  ratePerSecond: number | null;
  /** Bucket size: how many may start at once after a quiet spell. Default (null): max(1, ceil(ratePerSecond / 10)). */
  burst: number | null;
  /** At most this many messages of one group in flight at once (counting earlier ones waiting to be retried). */
  groupMaxInFlight: number | null;
  /** At most this many messages of one group started per second. */
  groupRatePerSecond: number | null;
  /** Bucket size per group. Default (null): max(1, ceil(groupRatePerSecond / 10)). */
  groupBurst: number | null;
  /**
   * Anti-starvation: what one level of priority is worth in waiting. A message goes
   * ahead of a message one level above it that became due more than this many
   * milliseconds later (n levels: n times as long), so a low priority that has waited
   * long enough passes newcomers of every higher one. `null`: strict priorities. Default
   * {@link DEFAULT_PRIORITY_AGING_MS}. A change applies to the messages waiting in the
   * queue too (they are re-ranked with it).
   */
  priorityAgingMs: number | null;
}

const FIELDS = {
  maxInFlight: { column: 'max_in_flight', kind: 'int', min: 1, max: MAX_FLOW_LIMIT },
  ratePerSecond: { column: 'rate_per_second', kind: 'number', min: 0, max: MAX_FLOW_LIMIT },
  burst: { column: 'burst', kind: 'int', min: 1, max: MAX_FLOW_LIMIT },
  groupMaxInFlight: { column: 'group_max_in_flight', kind: 'int', min: 1, max: MAX_FLOW_LIMIT },
  groupRatePerSecond: { column: 'group_rate_per_second', kind: 'number', min: 0, max: MAX_FLOW_LIMIT },
  groupBurst: { column: 'group_burst', kind: 'int', min: 1, max: MAX_FLOW_LIMIT },
  priorityAgingMs: { column: 'priority_aging_ms', kind: 'int', ...PRIORITY_AGING_MS_RANGE },
} as const;

type Field = keyof typeof FIELDS;
const FIELD_NAMES = Object.keys(FIELDS) as Field[];

/**
 * Checks a (partial) set of limits, reporting every problem at once.
 * @throws {InvalidOptionsError} `INVALID_OPTIONS` listing each bad or unknown field.
 * @example checkQueueLimits({ maxInFlight: 5, ratePerSecond: 50 }) // returns it unchanged
 */
export function checkQueueLimits(limits: Partial<QueueLimits>): Partial<QueueLimits> {
  const problems: string[] = [];
  if (typeof limits !== 'object' || limits === null || Array.isArray(limits)) {
    throw new InvalidOptionsError('queue limits', ['limits must be an object']);
  }
  for (const key of Object.keys(limits)) {
    if (!(key in FIELDS)) problems.push(`unknown limit ${JSON.stringify(key)} (known: ${FIELD_NAMES.join(', ')})`);
  }
  for (const name of FIELD_NAMES) {
    const value: unknown = limits[name];
    if (value === undefined || value === null) continue;
    const f = FIELDS[name];
    if (f.kind === 'int') {
      if (typeof value !== 'number' || !Number.isInteger(value) || value < f.min || value > f.max) {
        problems.push(`${name} must be null or an integer from ${f.min} to ${f.max}, got ${describeValue(value)}`);
      }
    } else if (typeof value !== 'number' || !Number.isFinite(value) || value <= f.min || value > f.max) {
      problems.push(`${name} must be null or a number above ${f.min} and at most ${f.max}, got ${describeValue(value)}`);
    }
  }
  if (problems.length > 0) throw new InvalidOptionsError('queue limits', problems);
  return limits;
}

type LimitsRow = Record<(typeof FIELDS)[Field]['column'], number | null> & { old_group_max?: number | null };

/** Maps a `queues` row to {@link QueueLimits}. */
export function limitsFromRow(row: Partial<LimitsRow>): QueueLimits {
  const out = {} as QueueLimits;
  for (const name of FIELD_NAMES) {
    const v = row[FIELDS[name].column];
    out[name] = v === null || v === undefined ? null : Number(v);
  }
  return out;
}

const COLUMNS = FIELD_NAMES.map((n) => FIELDS[n].column).join(', ');
const COLUMNS_OF_Q = FIELD_NAMES.map((n) => `q.${FIELDS[n].column}`).join(', ');

/**
 * Sets flow-control limits of a queue, at run time: every worker's next claim obeys
 * them. Fields given are set (`null` removes a limit); fields left out keep their
 * value. Creates the queue when it does not exist yet. Resolves to the limits now in
 * force.
 *
 * Batches already claimed when `maxInFlight` is first set do not count against it;
 * from then on every claim does. Publishing is never held back: a queue over its
 * limits buffers. Setting `groupMaxInFlight` where there was none also moves each
 * group's waiting messages past its window out of the claims' way (held, see
 * docs/flow-control.md), in this call; removing it brings them all back.
 *
 * @throws {InvalidOptionsError} `INVALID_OPTIONS` listing every problem (negative,
 *   fractional or absurd values, unknown fields); `INVALID_QUEUE_NAME`.
 * @example
 * // A flash sale: the payment back end bears 500 calls a second, 50 at once,
 * // and no merchant more than 5 at once.
 * await setQueueLimits(pool, 'payments', { ratePerSecond: 500, maxInFlight: 50, groupMaxInFlight: 5 });
 */
export async function setQueueLimits(
  db: Executor,
  queue: string,
  limits: Partial<QueueLimits>,
  options: AdminOptions = {},
): Promise<QueueLimits> {
  const name = validateQueueName(queue);
  checkQueueLimits(limits);
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const run = toRunQuery(db);
  const given = FIELD_NAMES.filter((f) => limits[f] !== undefined);
  await run(`INSERT INTO ${s}.queues (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`, [name]);
  const sets = given.map((f, i) => `${FIELDS[f].column} = $${i + 2}`);
  // A new priorityAgingMs re-ranks the queue's messages of priorities other than 0 in the
  // same statement (claim_rank holds priority x the old value); a new groupMaxInFlight is
  // copied to the queue's direct routes, where publish reads it (see held.ts). The old row
  // is read FOR UPDATE before the update (which joins it), so of two changes at once the
  // second sees the first's value.
  const [row] = await run<LimitsRow>(
    sets.length > 0
      ? `WITH old AS (
           SELECT priority_aging_ms, group_max_in_flight FROM ${s}.queues WHERE name = $1 FOR UPDATE
         ), changed AS (
           UPDATE ${s}.queues q SET ${sets.join(', ')} FROM old WHERE q.name = $1
           RETURNING ${COLUMNS_OF_Q}, old.group_max_in_flight AS old_group_max
         ), routed AS (
           UPDATE ${s}.direct_routes r SET held_window = ${heldWindowOf('changed')}
           FROM changed WHERE r.queue = $1 AND r.held_window IS DISTINCT FROM ${heldWindowOf('changed')}
         ), reranked AS (
           UPDATE ${s}.queue_messages m
           SET claim_rank = m.claim_rank + m.priority * (${levelMsOf('old')} - ${levelMsOf('changed')})
           FROM old, changed
           WHERE m.queue = $1 AND m.priority <> 0 AND old.priority_aging_ms IS DISTINCT FROM changed.priority_aging_ms
         )
         SELECT * FROM changed`
      : `SELECT ${COLUMNS} FROM ${s}.queues WHERE name = $1`,
    [name, ...given.map((f) => limits[f])],
  );
  // A group limit set or removed holds or clears the rows past each group's window (see
  // held.ts); a change of its value leaves them to the claims and the sweep.
  if (row?.old_group_max !== undefined && (row.old_group_max === null) !== (row.group_max_in_flight === null)) {
    await run(row.group_max_in_flight === null ? releaseAll(s) : holdTails(s), [name]);
  }
  return limitsFromRow(row!);
}

/** Clears every held row of queue $1: its group limit is gone. */
const releaseAll = (s: string): string => `
  WITH picked AS (SELECT m.tableoid, m.ctid FROM ${s}.queue_messages m WHERE m.queue = $1 AND m.held FOR UPDATE OF m)
  , ${eachSlot(s, 'r', 'picked', 'held = false')}
  SELECT ${eachSlotCount('r')} AS released`;

/**
 * Holds the rows of queue $1 past each group's held window (a backlog published before
 * the limit): those not leased nor tried yet, behind the first `heldWindowOf` of their
 * group.
 */
const holdTails = (s: string): string => `
  WITH ranked AS (
    SELECT m.tableoid, m.ctid, m.lease_token, m.attempts, m.held,
           row_number() OVER (PARTITION BY m.group_key ORDER BY m.seq) AS rn
    FROM ${s}.queue_messages m WHERE m.queue = $1 AND m.group_key IS NOT NULL
  ), picked AS (
    SELECT r.tableoid, r.ctid FROM ranked r, ${s}.queues q
    WHERE q.name = $1 AND r.rn > ${heldWindowOf('q')}
      AND r.lease_token IS NULL AND r.attempts = 0 AND NOT r.held
  ), ${eachSlot(s, 'h', 'picked', 'held = true')}
  SELECT ${eachSlotCount('h')} AS held`;

/**
 * The flow-control limits of a queue (all `null` but `priorityAgingMs` for a queue
 * never limited).
 * @throws {SagaboxError} `NOT_FOUND` for an unknown queue.
 * @example const { ratePerSecond } = await getQueueLimits(pool, 'payments');
 */
export async function getQueueLimits(db: Executor, queue: string, options: AdminOptions = {}): Promise<QueueLimits> {
  const name = validateQueueName(queue);
  const s = quoteSchema(options.schema ?? DEFAULT_SCHEMA);
  const [row] = await toRunQuery(db)<LimitsRow>(`SELECT ${COLUMNS} FROM ${s}.queues WHERE name = $1`, [name]);
  if (!row) throw new SagaboxError('NOT_FOUND', `unknown queue: ${name}`, { details: { queue: name } });
  return limitsFromRow(row);
}
