import { parseArgs } from 'node:util';

/** Which workloads exist; `--workloads` picks a subset. */
export const WORKLOADS = ['w1', 'w2', 'w2r', 'w3', 'saga', 'rabbitmq', 'nats', 'snapshot', 'backlog', 'churn'] as const;
export type Workload = (typeof WORKLOADS)[number];
/** What runs without --workloads: the storage workloads and churn take most of an hour each and are asked for by name. */
export const DEFAULT_WORKLOADS: readonly Workload[] = ['w1', 'w2', 'w2r', 'w3', 'saga', 'rabbitmq', 'nats'];

/** Which systems to run: the peers (graphile-worker, pg-boss and the plain-SQL floors), sagabox, or both. */
export type SystemSelection = 'all' | 'peers' | 'sagabox';

export interface BenchOptions {
  databaseUrl: string;
  quick: boolean;
  systems: SystemSelection;
  /** W1, W2, W2r, W3: only the variants with these ids (`--variants`); undefined: every one. */
  variantIds: readonly string[] | undefined;
  workloads: readonly Workload[];
  /** W1: concurrent producer connections. */
  w1Clients: number;
  /** W1: measured seconds per variant (after the warm-up). */
  w1DurationMs: number;
  w1WarmupMs: number;
  /** W1: interleaved rounds the measured time is split into. */
  w1Rounds: number;
  /**
   * W2 / W2r: messages in the backlog. 200,000 by default: the fast systems drain 50,000
   * in 1-3 s here, too short to rank them against the machine's jitter.
   */
  w2Messages: number;
  /** W2: consumer concurrency. */
  w2Concurrency: number;
  /** W3: producer commits per second. */
  w3Rate: number;
  w3DurationMs: number;
  /** Storage and churn workloads: on a server the benchmark starts (default settings) or on databaseUrl's. */
  server: 'own' | 'url';
  /** Held snapshot: offered messages per second. */
  snapshotRate: number;
  snapshotMs: number;
  /** Held snapshot: latency window length. */
  snapshotWindowMs: number;
  /** Held snapshot: also run every system without the snapshot. */
  snapshotBaseline: boolean;
  /** Deep backlog: ready messages in each of the two deep queues. */
  backlogMessages: number;
  backlogPhaseMs: number;
  /** Deep backlog: offered rate of the third queue. */
  trickleRate: number;
  /** Churn: how long the offered load runs. */
  churnMs: number;
  /** Churn: offered messages per second, half through the outbox, half through a direct route. */
  churnRate: number;
  /** Churn: sagas started per second (0: none). */
  churnSagaRate: number;
  /** Churn: length of a reporting window. */
  churnWindowMs: number;
  /** Churn: retention of inbox rows, dead letters, half-message decisions and finished sagas (shortened so it acts within the run). */
  churnRetentionMs: number;
  keepDatabases: boolean;
  writeReport: boolean;
}

const HELP = `Usage: npm run bench -- [options]

  --quick                   short smoke run (about a minute)
  --only all|peers|sagabox  which systems to run (default all); alias --systems
  --variants IDS            only these variants of W1, W2, W2r and W3, or systems of the
                            storage workloads (sagabox, sagabox_outbox, graphile, pgboss),
                            by id (comma-separated, e.g. graphile_batched,
                            sagabox_inbox); the others are left out
  --workloads LIST          of w1,w2,w2r,w3,saga,rabbitmq,nats,snapshot,backlog,churn (default all
                            but snapshot, backlog and churn; the bare word storage means
                            snapshot and backlog)
  --w1-clients N            W1 concurrent clients (default 4)
  --w1-seconds S            W1 measured seconds per variant (default 15, quick 3)
  --w1-warmup-seconds S     W1 warm-up seconds per variant and round (default 1, quick 0.5)
  --w1-rounds N             W1 interleaved rounds sharing the measured time (default 3, quick 1)
  --w2-messages N           W2/W2r backlog size (default 200000, quick 5000)
  --w2-concurrency N        W2 worker concurrency (default 10)
  --w3-rate N               W3 producer commits per second (default 200)
  --w3-seconds S            W3 producer seconds (default 20, quick 4)
  --snapshot-minutes M      held snapshot: minutes of offered load (default 10, quick 1)
  --snapshot-rate N         held snapshot: offered messages/s (default 500)
  --snapshot-window-seconds S  held snapshot: latency window (default 60, quick 15)
  --snapshot-baseline       held snapshot: also run each system without the snapshot
  --backlog-messages N      deep backlog: ready messages in each of 2 queues
                            (default 1000000, quick 100000)
  --backlog-seconds S       deep backlog: length of each measured phase (default 15, quick 5)
  --trickle-rate N          deep backlog: third queue's offered messages/s (default 50)
  --churn-minutes M         churn: minutes of offered load (default 30, quick 2)
  --churn-rate N            churn: offered messages/s, half via the outbox and relay, half
                            via a direct route (default 1000)
  --churn-saga-rate N       churn: three-step sagas started per second (default 20; 0: none)
  --churn-window-seconds S  churn: reporting window (default 60, quick 15)
  --churn-retention-minutes M  churn: retention of inbox, dead letters, half-message
                            decisions and finished sagas, shortened so that it acts
                            within the run (default 5, quick 1)
  --server own|url          storage and churn workloads: start a PostgreSQL with default
                            settings from the machine's binaries (own, default) or
                            use the database URL's server (url)
  --database-url URL        admin URL; default $BENCH_DATABASE_URL or
                            postgres://postgres@127.0.0.1:5432/postgres
  --keep-databases          do not drop the bench_* databases afterwards
  --no-report               do not write bench/RESULTS.md (JSON is always written)
  -h, --help

Bare words work as well: quick, peers, sagabox, w1, w2, w2r, w3, saga, rabbitmq, nats, snapshot, backlog, churn, storage.

Through the root script (npm run bench -- ...) a second npm run sits in between: it
turns flags it does not know into npm_config_* variables (read here too) and eats
--only, which is one of its own. From the root, write
  npm run bench -- --quick --systems=peers --workloads=w1,w3
or bare words: npm run bench -- quick peers w1 w3
or call the workspace directly: npm run --workspace bench bench -- --quick --only peers
BENCH_QUICK=1 and BENCH_ONLY=peers work too.`;

/** `--variants a,b`: the ids, or undefined when not given. */
function variantIds(raw: string | undefined): string[] | undefined {
  const ids = (raw ?? '').split(',').map((id) => id.trim()).filter((id) => id !== '');
  return ids.length === 0 ? undefined : ids;
}

/** Parses argv (and the npm_config_* / BENCH_* fallbacks) into options, reporting every problem at once. */
export function resolveOptions(argv: readonly string[], env: NodeJS.ProcessEnv): BenchOptions | { help: string } {
  const { values, positionals } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: true,
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      systems: { type: 'string' },
      variants: { type: 'string' },
      workloads: { type: 'string' },
      'w1-clients': { type: 'string' },
      'w1-seconds': { type: 'string' },
      'w1-warmup-seconds': { type: 'string' },
      'w1-rounds': { type: 'string' },
      'w2-messages': { type: 'string' },
      'w2-concurrency': { type: 'string' },
      'w3-rate': { type: 'string' },
      'w3-seconds': { type: 'string' },
      'snapshot-minutes': { type: 'string' },
      'snapshot-rate': { type: 'string' },
      'snapshot-window-seconds': { type: 'string' },
      'snapshot-baseline': { type: 'boolean' },
      'backlog-messages': { type: 'string' },
      'backlog-seconds': { type: 'string' },
      'trickle-rate': { type: 'string' },
      'churn-minutes': { type: 'string' },
      'churn-rate': { type: 'string' },
      'churn-saga-rate': { type: 'string' },
      'churn-window-seconds': { type: 'string' },
      'churn-retention-minutes': { type: 'string' },
      server: { type: 'string' },
      'database-url': { type: 'string' },
      'keep-databases': { type: 'boolean' },
      'no-report': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return { help: HELP };

  // `npm run bench -- --quick` at the root goes through a second `npm run`, which
  // turns unknown flags into npm_config_<name> variables instead of passing them on.
  const fromNpm = (name: string): string | undefined => env[`npm_config_${name.replaceAll('-', '_')}`];
  const flag = (name: keyof typeof values & string): string | undefined => {
    const value = values[name];
    if (typeof value === 'string') return value;
    // npm's own `only` config is not ours, whatever npm left in it.
    if (name === 'only') return undefined;
    const viaNpm = fromNpm(name);
    return viaNpm === '' || viaNpm === 'null' ? undefined : viaNpm;
  };
  const isOn = (v: string | boolean | undefined): boolean => v === true || v === 'true' || v === '1';

  const problems: string[] = [];
  const words = positionals.map((p) => p.trim().toLowerCase()).filter((p) => p !== '');
  const wordWorkloads = words.flatMap((w) => (w === 'storage' ? ['snapshot', 'backlog'] : (WORKLOADS as readonly string[]).includes(w) ? [w] : []));
  const wordSystems: string[] = words.filter((w) => w === 'peers' || w === 'sagabox' || w === 'all');
  const strayWords = words.filter((w) => w !== 'quick' && w !== 'storage' && !wordWorkloads.includes(w) && !wordSystems.includes(w));
  if (strayWords.length > 0) problems.push(`unknown argument(s): ${strayWords.join(' ')}`);
  const quick = isOn(values.quick) || words.includes('quick') || isOn(fromNpm('quick')) || isOn(env.BENCH_QUICK);
  const number = (name: keyof typeof values & string, fallback: number, min: number): number => {
    const raw = flag(name);
    if (raw === undefined || raw === '') return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min) {
      problems.push(`--${name} must be a number >= ${min}, got ${JSON.stringify(raw)}`);
      return fallback;
    }
    return n;
  };

  const only = flag('only') ?? flag('systems') ?? wordSystems[0] ?? env.BENCH_ONLY ?? 'all';
  if (only !== 'all' && only !== 'peers' && only !== 'sagabox') {
    problems.push(`--only must be all, peers or sagabox, got ${JSON.stringify(only)}`);
  }
  const workloadList = (flag('workloads') ?? (wordWorkloads.length > 0 ? wordWorkloads.join(',') : DEFAULT_WORKLOADS.join(',')))
    .split(',')
    .map((w) => w.trim().toLowerCase())
    .filter((w) => w !== '')
    .flatMap((w) => (w === 'storage' ? ['snapshot', 'backlog'] : [w]));
  const unknown = workloadList.filter((w) => !(WORKLOADS as readonly string[]).includes(w));
  if (unknown.length > 0) problems.push(`--workloads: unknown ${unknown.join(', ')} (known: ${WORKLOADS.join(', ')})`);

  const options: BenchOptions = {
    databaseUrl: flag('database-url') ?? env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    quick,
    systems: only as SystemSelection,
    variantIds: variantIds(flag('variants')),
    workloads: WORKLOADS.filter((w) => workloadList.includes(w)),
    w1Clients: Math.round(number('w1-clients', 4, 1)),
    w1DurationMs: number('w1-seconds', quick ? 3 : 15, 0.5) * 1000,
    w1WarmupMs: number('w1-warmup-seconds', quick ? 0.5 : 1, 0) * 1000,
    w1Rounds: Math.round(number('w1-rounds', quick ? 1 : 3, 1)),
    w2Messages: Math.round(number('w2-messages', quick ? 5_000 : 200_000, 100)),
    w2Concurrency: Math.round(number('w2-concurrency', 10, 1)),
    w3Rate: number('w3-rate', 200, 1),
    w3DurationMs: number('w3-seconds', quick ? 4 : 20, 1) * 1000,
    server: 'own',
    snapshotRate: number('snapshot-rate', 500, 1),
    snapshotMs: number('snapshot-minutes', quick ? 1 : 10, 0.1) * 60_000,
    snapshotWindowMs: number('snapshot-window-seconds', quick ? 15 : 60, 1) * 1000,
    snapshotBaseline: isOn(values['snapshot-baseline']) || isOn(fromNpm('snapshot-baseline')),
    backlogMessages: Math.round(number('backlog-messages', quick ? 100_000 : 1_000_000, 1_000)),
    backlogPhaseMs: number('backlog-seconds', quick ? 5 : 15, 1) * 1000,
    trickleRate: number('trickle-rate', 50, 1),
    churnMs: number('churn-minutes', quick ? 2 : 30, 0.1) * 60_000,
    churnRate: number('churn-rate', 1_000, 2),
    churnSagaRate: number('churn-saga-rate', 20, 0),
    churnWindowMs: number('churn-window-seconds', quick ? 15 : 60, 1) * 1000,
    churnRetentionMs: number('churn-retention-minutes', quick ? 1 : 5, 0.1) * 60_000,
    keepDatabases: isOn(values['keep-databases']) || isOn(fromNpm('keep-databases')),
    // npm reads `--no-report` as its negation of a `report` setting and leaves an empty npm_config_report.
    writeReport: !(isOn(values['no-report']) || isOn(fromNpm('no-report')) || (env.npm_config_report !== undefined && !isOn(env.npm_config_report))),
  };
  const server = flag('server') ?? 'own';
  if (server !== 'own' && server !== 'url') problems.push(`--server must be own or url, got ${JSON.stringify(server)}`);
  else options.server = server;
  if (problems.length > 0) throw new Error(`invalid bench options:\n  ${problems.join('\n  ')}\n\n${HELP}`);
  return options;
}
