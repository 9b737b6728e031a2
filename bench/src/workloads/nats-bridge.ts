import type { BenchOptions } from '../harness/options.js';
import { withDatabase } from '../harness/databases.js';
import { errorText, progress } from '../harness/progress.js';
import type { Variant } from '../harness/variant.js';
import type { BridgeResult } from '../report/results.js';

/** The machine's NATS (JetStream on 4222) unless SAGABOX_BENCH_NATS_URL names another. */
const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

/**
 * The NATS JetStream bridge (relay out, inbox consumer in) beside the NATS client's own
 * JetStream calls on the same server. The sagabox code is loaded on demand, like the
 * saga workload's.
 */
export async function runNatsBridgeWorkload(options: BenchOptions, env: NodeJS.ProcessEnv): Promise<BridgeResult> {
  const count = options.quick ? 5_000 : 20_000;
  const natsUrl = env.SAGABOX_BENCH_NATS_URL ?? DEFAULT_NATS_URL;
  const variant = { id: 'sagabox_nats', label: 'sagabox NATS JetStream bridge', kind: 'sagabox', install: async () => {} } as unknown as Variant;
  progress(`NATS: ${count} messages out (relay vs PubAck'ed client publish) and in (inbox consumer vs acking client consumer)`);
  try {
    const module = (await import('../sagabox/nats-bridge.js')) as {
      runNatsBridge(url: string, natsUrl: string, count: number): Promise<Omit<BridgeResult, 'error'>>;
    };
    const r = await withDatabase(options, 'nats_bridge', variant, (url) => module.runNatsBridge(url, natsUrl, count));
    progress(`NATS out: relay ${Math.round(r.relayPerSecond)}/s, 2 relays ${Math.round(r.twoRelaysPerSecond ?? 0)}/s vs client ${Math.round(r.clientPublishPerSecond)}/s (${r.relayRatio.toFixed(2)}x); in: inbox consumer ${Math.round(r.inboxConsumerPerSecond)}/s vs plain ${Math.round(r.plainConsumerPerSecond)}/s (${r.consumerRatio.toFixed(2)}x)`);
    return r;
  } catch (error) {
    progress(`NATS failed: ${errorText(error)}`);
    return { messages: count, clientPublishPerSecond: 0, relayPerSecond: 0, relayRatio: 0, plainConsumerPerSecond: 0, inboxConsumerPerSecond: 0, consumerRatio: 0, error: errorText(error) };
  }
}
