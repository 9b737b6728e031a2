import type { BenchOptions } from '../harness/options.js';
import { withDatabase } from '../harness/databases.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { BridgeResult } from '../report/results.js';

/** The machine's RabbitMQ unless SAGABOX_BENCH_AMQP_URL names another. */
const DEFAULT_AMQP_URL = 'amqp://guest:guest@127.0.0.1:5672';

/**
 * The RabbitMQ bridge (relay out, inbox consumer in) beside RabbitMQ's own client on
 * the same broker. The sagabox code is loaded on demand, like the saga workload's.
 */
export async function runRabbitMqBridgeWorkload(options: BenchOptions, env: NodeJS.ProcessEnv): Promise<BridgeResult> {
  const count = options.quick ? 5_000 : 20_000;
  const amqpUrl = env.SAGABOX_BENCH_AMQP_URL ?? DEFAULT_AMQP_URL;
  const variant = { id: 'sagabox_rabbitmq', label: 'sagabox RabbitMQ bridge', kind: 'sagabox', install: async () => {} } as unknown as Variant;
  progress(`RABBITMQ: ${count} messages out (relay vs confirmed client publish) and in (inbox consumer vs acking client consumer)`);
  try {
    const module = (await import('../sagabox/rabbitmq-bridge.js')) as {
      runRabbitMqBridge(url: string, amqpUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>>;
    };
    const r = await withDatabase(options, 'rabbitmq_bridge', variant, (url) => module.runRabbitMqBridge(url, amqpUrl, count));
    progress(`RABBITMQ out: relay ${Math.round(r.relayPerSecond)}/s, 2 relays ${Math.round(r.twoRelaysPerSecond ?? 0)}/s vs client ${Math.round(r.clientPublishPerSecond)}/s (${r.relayRatio.toFixed(2)}x); in: inbox consumer ${Math.round(r.inboxConsumerPerSecond)}/s vs plain ${Math.round(r.plainConsumerPerSecond)}/s (${r.consumerRatio.toFixed(2)}x)`);
    return r;
  } catch (error) {
    progress(`RABBITMQ failed: ${errorText(error)}`);
    return { messages: count, clientPublishPerSecond: 0, relayPerSecond: 0, relayRatio: 0, plainConsumerPerSecond: 0, inboxConsumerPerSecond: 0, consumerRatio: 0, error: errorText(error) };
  }
}
