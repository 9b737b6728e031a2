// sagabox's e-commerce demo: `npm run demo [-- --orders N --chaos --seed S --json]`.
// Starts PostgreSQL (embedded unless DATABASE_URL is set), one database per service,
// the fake payment gateway and the four service processes; places a burst of orders
// through the orders API; prints live progress, then a summary and a consistency check.
// Exit code 0 when every check passed, 1 when one failed, 2 on bad arguments.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createServer } from 'node:net';
import pg from 'pg';
import pino from 'pino';
import { checkConsistency } from './demo/consistency-check.js';
import { createDemoDatabases } from './demo/demo-databases.js';
import { deadLetterCounts, renderSummary, sagaOutcomes, type DemoSummary } from './demo/demo-report.js';
import { initialStock, placeOrders, planOrders, seededRandom } from './demo/order-burst.js';
import { startPaymentGateway } from './demo/payment-gateway.js';
import { createProgressLine, formatProgress } from './demo/progress-line.js';
import { SERVICE_NAMES, type ServiceName } from './services/service-config.js';
import { createServiceProcesses } from './demo/service-processes.js';
import { createDemoRabbitMq } from './demo/rabbitmq-link.js';
import { startDemoDashboard } from './demo/demo-dashboard.js';

const USAGE = `usage: npm run demo -- [options]

  --orders N          orders in the burst (default 300)
  --chaos             SIGKILL a random service, restart it, and kill the next one 0.8-2 s
                      after it is back, for the whole run
  --broker NAME       postgres (default) or rabbitmq: the shipping service's commands and
                      replies cross RabbitMQ (AMQP_URL, default amqp://guest:guest@127.0.0.1:5672)
  --seed N            seed of the order mix and the chaos (default: random, printed)
  --rate N            orders per second at most (default: unlimited; with --chaos, orders/10, at least 10)
  --failure-rate F    share of gateway requests that fail with 503 (default 0.05)
  --timeout-s N       give up waiting for the sagas after N seconds (default 300)
  --json              print the summary as one JSON object on stdout
  --db-prefix NAME    database names are NAME_orders, ... (default ecommerce)
  --keep              keep the databases afterwards (with DATABASE_URL)
  --dashboard-port N  port of the services' dashboards on 127.0.0.1 (default 0: any free one)
  --stay              after the summary, keep the dashboards (and databases) up until Ctrl-C

Without DATABASE_URL the demo starts an embedded PostgreSQL; with it, it creates (and
drops) its own databases on that server.`;

function parseOptions() {
  const { values } = parseArgs({
    options: {
      orders: { type: 'string', default: '300' },
      chaos: { type: 'boolean', default: false },
      broker: { type: 'string', default: 'postgres' },
      seed: { type: 'string' },
      rate: { type: 'string' },
      'failure-rate': { type: 'string', default: '0.05' },
      'timeout-s': { type: 'string', default: '300' },
      json: { type: 'boolean', default: false },
      'db-prefix': { type: 'string', default: 'ecommerce' },
      keep: { type: 'boolean', default: false },
      'dashboard-port': { type: 'string', default: '0' },
      stay: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  const orders = Number(values.orders);
  const seed = values.seed === undefined ? Math.floor(Math.random() * 1_000_000) : Number(values.seed);
  const failureRate = Number(values['failure-rate']);
  const timeoutS = Number(values['timeout-s']);
  const dashboardPort = Number(values['dashboard-port']);
  const rate = values.rate === undefined ? (values.chaos ? Math.max(10, Math.ceil(orders / 10)) : 0) : Number(values.rate);
  const problems = [
    Number.isInteger(orders) && orders >= 1 && orders <= 100_000 ? null : '--orders must be an integer from 1 to 100000',
    Number.isInteger(seed) ? null : '--seed must be an integer',
    failureRate >= 0 && failureRate <= 0.5 ? null : '--failure-rate must be from 0 to 0.5',
    timeoutS > 0 ? null : '--timeout-s must be positive',
    rate >= 0 ? null : '--rate must be >= 0',
    values.broker === 'postgres' || values.broker === 'rabbitmq' ? null : '--broker must be postgres or rabbitmq',
    Number.isInteger(dashboardPort) && dashboardPort >= 0 && dashboardPort <= 65_535 ? null : '--dashboard-port must be a port number (0: any free one)',
  ].filter((p): p is string => p !== null);
  return { values, orders, seed, failureRate, timeoutS, rate, dashboardPort, problems };
}

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = createServer().unref().on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Fisher-Yates, in place. */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
  return items;
}

async function main(): Promise<number> {
  let options;
  try {
    options = parseOptions();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (options.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (options.problems.length > 0) {
    process.stderr.write(`${options.problems.join('\n')}\n\n${USAGE}\n`);
    return 2;
  }
  const { orders: total, seed, rate } = options;
  const chaos = options.values.chaos;
  const say = (line: string) => process.stderr.write(`${line}\n`);
  const logDir = mkdtempSync(join(tmpdir(), 'sagabox-demo-'));
  const logger = pino({ level: 'info', base: { service: 'supervisor' } }, pino.destination({ dest: join(logDir, 'supervisor.log'), mkdir: true }));
  const serverUrl = process.env.DATABASE_URL || undefined;

  say(`sagabox e-commerce demo: ${total} orders, seed ${seed}${chaos ? ', chaos on' : ''}`);
  say(serverUrl ? 'PostgreSQL: DATABASE_URL' : 'PostgreSQL: starting an embedded server (no DATABASE_URL) ...');
  const databases = await createDemoDatabases({ serverUrl, prefix: options.values['db-prefix'], logger });
  const pools = Object.fromEntries(SERVICE_NAMES.map((s) => [s, new pg.Pool({ connectionString: databases.urls[s], max: 2, connectionTimeoutMillis: 10_000 })])) as Record<ServiceName, pg.Pool>;
  // pg-pool's end() resolves before its sockets are closed; a server shutting down in
  // that moment reports an error on the pool, which must not crash the process.
  for (const pool of Object.values(pools)) pool.on('error', (err) => logger.warn({ err }, 'idle connection failed'));
  const random = seededRandom(seed);
  const gateway = await startPaymentGateway({ failureRate: options.failureRate, random: seededRandom(seed + 1), logger });
  const ordersPort = await freePort();
  const rabbitMq = options.values.broker === 'rabbitmq'
    ? await createDemoRabbitMq(process.env.AMQP_URL || 'amqp://guest:guest@127.0.0.1:5672', options.values['db-prefix'], logger)
    : undefined;
  if (rabbitMq) say(`broker: RabbitMQ carries the shipping service's commands and replies (exchange ${rabbitMq.link.exchange})`);
  const processes = createServiceProcesses({
    config: { databases: databases.urls, gatewayUrl: gateway.url, ordersPort, ...(rabbitMq ? { rabbitmq: rabbitMq.link } : {}) },
    logDir,
    logger,
  });
  const dashboard = await startDemoDashboard({ urls: databases.urls, port: options.dashboardPort, logger });
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      await dashboard.stop();
      await processes.stopAll();
      await gateway.stop();
      await rabbitMq?.close();
      await Promise.all(Object.values(pools).map((p) => p.end()));
      await databases.close({ keep: options.values.keep });
    })());
  const onSignal = () => {
    say('\ninterrupted; stopping ...');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    // Business data: what is on the shelf.
    for (const [sku, qty] of Object.entries(initialStock(total))) {
      await pools.inventory.query('INSERT INTO stock (sku, available, initial) VALUES ($1, $2, $2)', [sku, qty]);
    }
    say(`databases: ${Object.values(databases.urls).map((u) => new URL(u).pathname.slice(1)).join(', ')} (migrated)`);
    say('starting the orders, inventory, payments and shipping services ...');
    await processes.startAll();
    const ordersUrl = `http://127.0.0.1:${ordersPort}`;
    say(`orders API on ${ordersUrl}; payment gateway on ${gateway.url}; logs in ${logDir}`);
    say(`dashboard: ${dashboard.url} (one per service${chaos ? "; watch killed services' messages being retried and recovered" : ''})`);

    const planned = planOrders(total, random);
    const startedAt = Date.now();
    let placed = 0;
    let burstDone = false;
    let burstError: unknown;
    const burst = placeOrders({ ordersUrl, orders: planned, ratePerSecond: rate, onPlaced: () => placed++ }).then(
      (r) => ((burstDone = true), r),
      (err) => ((burstDone = true), (burstError = err), { retries: 0 }),
    );

    let finished = false;
    const chaosLoop = (async () => {
      if (!chaos) return;
      // One service down at a time: each round of four kills takes every service once, in
      // a random order; a killed service starts again 0.2-1 s later, and the next kill
      // comes 0.8-2 s after it is back (ready). Timed from the return rather than on a
      // fixed clock, chaos cannot keep services down for most of a run on a machine where
      // a restart takes seconds; it interrupts the flow without starving it.
      let round: ServiceName[] = [];
      while (!finished) {
        await sleep(800 + random() * 1_200);
        if (finished) break;
        if (round.length === 0) round = shuffle([...SERVICE_NAMES], random);
        const victim = round.shift()!;
        await processes
          .killAndRestart(victim, 200 + random() * 800)
          .catch((err) => logger.error({ err, victim }, 'chaos restart failed'));
      }
    })();

    const progress = createProgressLine();
    const deadline = startedAt + options.timeoutS * 1000;
    let byStatus: Record<string, number> = {};
    let finishedAt = Date.now();
    const kills = () => Object.values(processes.stats().kills).reduce((a, b) => a + b, 0);
    for (;;) {
      const { rows } = await pools.orders.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM sagabox.sagas GROUP BY status');
      byStatus = Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
      const done = (byStatus.completed ?? 0) + (byStatus.compensated ?? 0) + (byStatus.failed ?? 0);
      const line = formatProgress({ placed, total, byStatus, elapsedMs: Date.now() - startedAt, kills: kills() });
      if ((burstDone && done >= placed) || Date.now() > deadline) {
        finishedAt = Date.now();
        progress.done(line);
        break;
      }
      progress.update(line);
      await sleep(200);
    }
    finished = true;
    const { retries } = await burst;
    if (burstError) say(`placing orders failed: ${(burstError as Error).message}`);
    await chaosLoop;

    // One order of each outcome, through the API, to show what GET /orders/:id tells.
    if (!options.values.json) {
      const { rows } = await pools.orders.query<{ id: string }>(
        "SELECT DISTINCT ON (status) id FROM sagabox.sagas WHERE status IN ('completed', 'compensated') ORDER BY status, updated_at DESC",
      );
      for (const { id } of rows) {
        const order = (await (await fetch(`${ordersUrl}/orders/${id}`)).json()) as { status: string; error: string | null; history: { step: string; event: string }[] };
        say(`GET /orders/${id}: ${order.status}${order.error ? ` (${order.error})` : ''}`);
        say(`  ${order.history.map((e) => `${e.step}:${e.event}`).join(' → ')}`);
      }
    }

    await processes.stopAll();
    const outcomes = await sagaOutcomes(pools.orders);
    const checks = await checkConsistency({ pools, gatewayCharges: gateway.charges(), placed });
    // Measured on this machine's clock (the database server's may differ), to within one progress tick.
    const elapsedMs = Math.max(1, finishedAt - startedAt);
    const stats = processes.stats();
    const summary: DemoSummary = {
      orders: total,
      server: databases.server,
      broker: options.values.broker === 'rabbitmq' ? 'rabbitmq' : 'postgres',
      chaos: { enabled: chaos, kills: stats.kills, crashes: stats.crashes },
      completed: outcomes.completed,
      compensated: outcomes.compensated,
      failed: outcomes.failed,
      running: outcomes.running,
      reasons: outcomes.reasons,
      throughputPerSecond: (outcomes.completed + outcomes.compensated + outcomes.failed) / (elapsedMs / 1000),
      elapsedMs,
      completionMs: outcomes.completionMs,
      compensationMs: outcomes.compensationMs,
      gateway: { charges: gateway.charges().filter((c) => c.status === 'succeeded').length, injectedFailures: gateway.injectedFailures() },
      httpRetries: retries,
      deadLetters: await deadLetterCounts(pools),
      checks,
      consistent: checks.every((c) => c.ok) && burstError === undefined,
      logDir,
      dashboardUrl: dashboard.url,
    };
    process.stdout.write(options.values.json ? `${JSON.stringify(summary)}\n` : renderSummary(summary));
    if (options.values.stay) {
      // Ctrl-C now ends the wait, then the usual cleanup runs with the summary's exit code.
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      say(`dashboard stays up on ${dashboard.url}; Ctrl-C to stop`);
      await new Promise<void>((resolve) => { process.once('SIGINT', () => resolve()); process.once('SIGTERM', () => resolve()); });
    }
    return summary.consistent ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`demo failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
