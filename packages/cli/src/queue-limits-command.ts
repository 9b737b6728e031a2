import type { Command } from 'commander';
import { getQueueLimits, MAX_FLOW_LIMIT, PRIORITY_AGING_MS_RANGE, setQueueLimits, type QueueLimits } from '@sagabox/core/admin';
import { parseDurationFlag, parseIntFlag } from './cli-values.js';
import { addConnectionOptions, type ConnectionFlags } from './connection-options.js';
import type { CommandOutput } from './migrate-command.js';
import { withPool } from './open-pool.js';
import { fitTable } from './fit-table.js';
import { UsageError } from './usage-error.js';

/** The `set-limits` value that removes a limit (for a burst: back to its default; for aging: strict priorities). */
export const NO_LIMIT = 'none';

interface Flags extends ConnectionFlags {
  json?: boolean;
}

/** `set-limits` flags: the connection flags and `--json`, plus one string per limit flag given. */
type SetLimitsFlags = Flags & Readonly<Record<string, unknown>>;

/** One `set-limits` flag: how it is spelled, the limit it sets, and how its value is parsed and shown. */
interface LimitFlag {
  flag: string;
  /** commander's name for the parsed value. */
  attribute: string;
  field: keyof QueueLimits;
  value: string;
  help: string;
  parse: (flag: string, value: string) => number;
  show: (limits: QueueLimits) => string;
}

function parseCount(flag: string, value: string): number {
  return parseIntFlag(flag, value, 1, MAX_FLOW_LIMIT);
}

function parseRate(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0 || n > MAX_FLOW_LIMIT) {
    throw new UsageError(`${flag} must be a number of messages per second above 0 and at most ${MAX_FLOW_LIMIT}`);
  }
  return n;
}

function parseAging(flag: string, value: string): number {
  return parseDurationFlag(flag, value, PRIORITY_AGING_MS_RANGE.min, PRIORITY_AGING_MS_RANGE.max);
}

const orNone = (n: number | null, unit = ''): string => (n === null ? NO_LIMIT : `${n}${unit}`);

// What the claim uses when no burst is set (bucket_burst in migrations/0001_baseline.sql), for display.
const showBurst = (burst: number | null, rate: number | null): string => {
  if (burst !== null) return String(burst);
  return rate === null ? 'default' : `default (${Math.max(1, Math.ceil(rate / 10))})`;
};

const LIMIT_FLAGS: readonly LimitFlag[] = [
  {
    flag: '--max-in-flight', attribute: 'maxInFlight', field: 'maxInFlight', value: 'n', parse: parseCount,
    help: 'at most n messages of the queue in flight at once, over all workers',
    show: (l) => orNone(l.maxInFlight),
  },
  {
    flag: '--rate', attribute: 'rate', field: 'ratePerSecond', value: 'perSecond', parse: parseRate,
    help: 'at most this many messages started per second (may be fractional, e.g. 0.5)',
    show: (l) => orNone(l.ratePerSecond, '/s'),
  },
  {
    flag: '--burst', attribute: 'burst', field: 'burst', value: 'n', parse: parseCount,
    help: `how many may start at once after a quiet spell (${NO_LIMIT}: the default, ceil(rate / 10))`,
    show: (l) => showBurst(l.burst, l.ratePerSecond),
  },
  {
    flag: '--group-max-in-flight', attribute: 'groupMaxInFlight', field: 'groupMaxInFlight', value: 'n', parse: parseCount,
    help: 'at most n messages of one group in flight at once',
    show: (l) => orNone(l.groupMaxInFlight),
  },
  {
    flag: '--group-rate', attribute: 'groupRate', field: 'groupRatePerSecond', value: 'perSecond', parse: parseRate,
    help: 'at most this many messages of one group started per second',
    show: (l) => orNone(l.groupRatePerSecond, '/s'),
  },
  {
    flag: '--group-burst', attribute: 'groupBurst', field: 'groupBurst', value: 'n', parse: parseCount,
    help: `bucket size per group (${NO_LIMIT}: the default, ceil(group rate / 10))`,
    show: (l) => showBurst(l.groupBurst, l.groupRatePerSecond),
  },
  {
    flag: '--priority-aging-ms', attribute: 'priorityAgingMs', field: 'priorityAgingMs', value: 'ms', parse: parseAging,
    help: `raise waiting messages one priority level per this long: ms, or 90s, 15m (${NO_LIMIT}: strict priorities)`,
    show: (l) => (l.priorityAgingMs === null ? `${NO_LIMIT} (strict priorities)` : `${l.priorityAgingMs}ms`),
  },
];

/**
 * Turns the `set-limits` flags into the limits to set: a number, or `none` for
 * `null`. Flags not given are left out, so those limits keep their value.
 *
 * @throws {UsageError} naming every bad value at once, or when no limit flag is given.
 * @example limitsFromFlags({ rate: '0.5', maxInFlight: 'none' }) // { maxInFlight: null, ratePerSecond: 0.5 }
 */
export function limitsFromFlags(flags: Readonly<Record<string, unknown>>): Partial<QueueLimits> {
  const limits: Partial<QueueLimits> = {};
  const problems: string[] = [];
  for (const f of LIMIT_FLAGS) {
    const value = flags[f.attribute];
    if (value === undefined) continue;
    if (value === NO_LIMIT) {
      limits[f.field] = null;
      continue;
    }
    try {
      limits[f.field] = f.parse(f.flag, String(value));
    } catch (err) {
      if (!(err instanceof UsageError)) throw err;
      problems.push(`${err.message}, or ${NO_LIMIT}`);
    }
  }
  if (problems.length > 0) throw new UsageError(problems.join('; '));
  if (Object.keys(limits).length === 0) {
    throw new UsageError(`nothing to set: pass at least one of ${LIMIT_FLAGS.map((f) => f.flag).join(', ')}`);
  }
  return limits;
}

/** The limits as a two-column table, one row per `set-limits` flag. */
export function formatLimits(limits: QueueLimits): string {
  return `${fitTable(['limit', 'value'], LIMIT_FLAGS.map((f) => [f.flag.slice(2), f.show(limits)]))}\n`;
}

/** Registers `sagabox queues limits <queue>` and `sagabox queues set-limits <queue> ...` under `queues`. */
export function registerQueueLimitsCommands(queues: Command, out: CommandOutput): void {
  addConnectionOptions(
    queues
      .command('limits')
      .description('flow limits of a queue: in flight, rate, burst, the same per group, priority aging')
      .argument('<queue>')
      .option('--json', 'print JSON, for scripts'),
  ).action(async (queue: string, flags: Flags) => {
    const limits = await withPool(flags, (pool) => getQueueLimits(pool, queue, { schema: flags.schema }));
    out.write(flags.json ? `${JSON.stringify(limits)}\n` : formatLimits(limits));
  });

  const set = queues
    .command('set-limits')
    .description(
      `set flow limits of a queue at run time (every worker's next claim obeys them); ` +
        `limits not given keep their value, ${NO_LIMIT} removes one; prints the limits now in force`,
    )
    .argument('<queue>');
  for (const f of LIMIT_FLAGS) set.option(`${f.flag} <${f.value}>`, f.help);
  addConnectionOptions(set.option('--json', 'print JSON, for scripts')).action(async (queue: string, flags: SetLimitsFlags) => {
    // Before connecting, so a mistyped value is reported without a database.
    const limits = limitsFromFlags(flags);
    const inForce = await withPool(flags, (pool) => setQueueLimits(pool, queue, limits, { schema: flags.schema }));
    out.write(flags.json ? `${JSON.stringify(inForce)}\n` : formatLimits(inForce));
  });
}
