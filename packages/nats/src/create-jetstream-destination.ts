import {
  InvalidOptionsError,
  SagaboxError,
  silentLogger,
  type Destination,
  type Logger,
  type RelayedMessage,
} from '@sagabox/core';
import { topicMatcher } from '@sagabox/core/extension';
import { jetstream, type JetStreamClient, type PubAck } from '@nats-io/jetstream';
import { errors as natsErrors, type MsgHdrs, type NatsConnection } from '@nats-io/transport-node';
import { holdConnection, type HeldConnection, type NatsConnectionSource } from './nats-connection.js';
import { toNatsHeaders } from './nats-headers.js';

/** Default longest wait for one message's PubAck, in milliseconds. */
export const DEFAULT_PUB_ACK_TIMEOUT_MS = 5_000;

/**
 * A route: messages whose topic matches `topic` (exact, `*` one segment, `#` any
 * segments) are published to JetStream on the subject `subject`, or by default on
 * `subjectPrefix` + the topic. sagabox topics are dot-separated like NATS subjects, so
 * a stream's subject filter (`orders.>`) reads like the route (`orders.#`).
 */
export interface JetStreamRoute {
  /** The sagabox topic pattern (`*` and `#` wildcards) this route takes. */
  topic: string;
  /** A fixed subject for every topic of this route. Default: `subjectPrefix` + topic. */
  subject?: string;
}

/** Options of {@link createJetStreamDestination}: `servers` to connect, or a `connection` you own. */
export type JetStreamDestinationOptions = NatsConnectionSource & {
  /** Topic patterns to subjects. A topic matching several routes is published to each subject. */
  routes: readonly JetStreamRoute[];
  /** Put before the topic to make the subject (`'events.'` sends `orders.created` to `events.orders.created`). Default `''`. */
  subjectPrefix?: string;
  /** Longest wait for a PubAck, in milliseconds; a timeout counts as the broker being unreachable. Default {@link DEFAULT_PUB_ACK_TIMEOUT_MS}. */
  pubAckTimeoutMs?: number;
  /** Name for logs and the connection. Default `'jetstream'`. */
  name?: string;
  logger?: Logger;
};

// A subject: tokens of visible characters without wildcards, separated by dots.
const SUBJECT = /^[^\s.*>]+(\.[^\s.*>]+)*$/;

interface ResolvedRoute {
  match: (topic: string) => boolean;
  subject: string | undefined;
}

function resolveRoutes(options: JetStreamDestinationOptions, problems: string[]): ResolvedRoute[] {
  const routes: ResolvedRoute[] = [];
  if (!Array.isArray(options?.routes) || options.routes.length === 0) problems.push('routes must be a non-empty array');
  for (const [i, r] of (options?.routes ?? []).entries()) {
    try {
      if (r.subject !== undefined && (typeof r.subject !== 'string' || !SUBJECT.test(r.subject))) {
        throw new Error(`subject must be a NATS subject without wildcards, got ${JSON.stringify(r.subject)}`);
      }
      routes.push({ match: topicMatcher(r.topic), subject: r.subject });
    } catch (err) {
      problems.push(`routes[${i}]: ${(err as Error).message}`);
    }
  }
  return routes;
}

/** Checks the options shared by the destination and the consumer: where the connection comes from. */
export function checkConnectionSource(options: Partial<NatsConnectionSource> | undefined, problems: string[]): void {
  const servers = options?.servers;
  const hasServers = typeof servers === 'string' || (Array.isArray(servers) && servers.length > 0 && servers.every((s) => typeof s === 'string'));
  const hasConnection = typeof options?.connection?.publish === 'function';
  if (hasServers === hasConnection) problems.push('give either servers (a URL or URLs) or connection (a NatsConnection)');
  for (const s of typeof servers === 'string' ? [servers] : Array.isArray(servers) ? servers : []) {
    if (typeof s !== 'string' || !/^(nats|tls|ws|wss):\/\/[^\s]+$|^[^\s:/]+(:\d+)?$/.test(s)) problems.push(`servers: ${JSON.stringify(s)} is not a NATS URL (nats://host:port)`);
  }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** True when `err` says the server is out of reach rather than that it refused this message. */
function isUnreachable(err: unknown): boolean {
  return (
    err instanceof natsErrors.TimeoutError ||
    err instanceof natsErrors.ClosedConnectionError ||
    err instanceof natsErrors.DrainingConnectionError ||
    err instanceof natsErrors.ConnectionError
  );
}

/**
 * A relay destination that publishes to NATS JetStream. Each message goes to its route's
 * subject with `Nats-Msg-Id` = the sagabox id, its headers (traceparent, correlation-id,
 * causation-id, reply-to, saga headers) as NATS headers, and sagabox's envelope in
 * `Sagabox-*` headers; `deliver` resolves only when the stream's PubAck for every message
 * has arrived, so the relay removes outbox rows the stream holds. A relay that dies
 * after the PubAck and before removing the rows sends them again: the stream drops
 * the copy by `Nats-Msg-Id` inside its duplicate window (2 minutes by default).
 *
 * A subject no stream captures (no responders), a message larger than the server's
 * `max_payload` or the stream's `max_msg_size`, or any other refusal throws a
 * `BROKER_REJECTED` (or `PAYLOAD_TOO_LARGE`) {@link SagaboxError}: the relay retries it
 * and then dead-letters it with the reason. A server out of reach (disconnected, no
 * PubAck in `pubAckTimeoutMs`) throws `BROKER_UNREACHABLE`: the relay puts the whole
 * batch back and backs off, counting no attempt.
 *
 * Order: messages of one key are published one after the other, each after the
 * previous one's PubAck; a stream keeps the order of what it stores, so one key's
 * messages on one subject are stored (and delivered) in commit order.
 *
 * @example
 * const relay = createRelay({
 *   pool,
 *   destinations: [createJetStreamDestination({ servers: 'nats://127.0.0.1:4222', routes: [{ topic: 'orders.#' }] })],
 * });
 */
export function createJetStreamDestination(options: JetStreamDestinationOptions): Destination {
  const problems: string[] = [];
  const routes = resolveRoutes(options, problems);
  checkConnectionSource(options, problems);
  const prefix = options?.subjectPrefix ?? '';
  if (typeof prefix !== 'string' || (prefix !== '' && !SUBJECT.test(`${prefix}x`))) problems.push(`subjectPrefix must be subject tokens ending in '.', got ${JSON.stringify(prefix)}`);
  const timeoutMs = options?.pubAckTimeoutMs ?? DEFAULT_PUB_ACK_TIMEOUT_MS;
  if (!Number.isInteger(timeoutMs) || timeoutMs < 1) problems.push(`pubAckTimeoutMs must be a positive integer, got ${JSON.stringify(timeoutMs)}`);
  if (problems.length > 0) throw new InvalidOptionsError('jetstream destination', problems);
  const name = options.name ?? 'jetstream';
  const log = (options.logger ?? silentLogger).child({ component: 'jetstream-destination', destination: name });
  const subjectsOf = new Map<string, string[]>();
  const subjectsFor = (topic: string): string[] => {
    let subjects = subjectsOf.get(topic);
    if (!subjects) {
      subjects = [...new Set(routes.filter((r) => r.match(topic)).map((r) => r.subject ?? `${prefix}${topic}`))];
      if (subjectsOf.size < 10_000) subjectsOf.set(topic, subjects);
    }
    return subjects;
  };
  let held: HeldConnection | undefined;
  let js: { nc: NatsConnection; client: JetStreamClient } | undefined;
  const client = (): JetStreamClient => {
    held ??= holdConnection(options, `sagabox-${name}`, log);
    const nc = held.usable();
    if (!nc) throw new SagaboxError('BROKER_UNREACHABLE', `${name}: not connected to NATS`, { details: { destination: name } });
    if (js?.nc !== nc) js = { nc, client: jetstream(nc, { timeout: timeoutMs }) };
    return js.client;
  };

  const publishOne = async (c: JetStreamClient, m: RelayedMessage, subject: string, headers: MsgHdrs): Promise<PubAck> => {
    const maxPayload = js?.nc.info?.max_payload;
    const bytes = Buffer.byteLength(m.payload, 'utf8');
    if (maxPayload !== undefined && bytes > maxPayload) {
      throw new SagaboxError('PAYLOAD_TOO_LARGE', `message ${m.id} is ${bytes} bytes, more than the NATS server's max_payload of ${maxPayload}`, {
        details: { messageId: m.id, bytes, maxPayload },
      });
    }
    try {
      return await c.publish(subject, m.payload, { msgID: m.id, headers, timeout: timeoutMs });
    } catch (err) {
      if (isUnreachable(err)) {
        throw new SagaboxError('BROKER_UNREACHABLE', `${name}: no PubAck for message ${m.id} on ${subject}: ${errorText(err)}`, { cause: err, details: { messageId: m.id, subject } });
      }
      const noStream = (err as Error).name === 'JetStreamNotEnabled' || /no responders/i.test(errorText(err));
      throw new SagaboxError(
        'BROKER_REJECTED',
        noStream ? `no JetStream stream takes subject ${subject} (no responders)` : `JetStream refused message ${m.id} on ${subject}: ${errorText(err)}`,
        { cause: err, details: { messageId: m.id, subject } },
      );
    }
  };

  return {
    name,
    external: true,
    matches: (topic) => subjectsFor(topic).length > 0,
    async start() {
      held ??= holdConnection(options, `sagabox-${name}`, log);
    },
    async deliver(messages: readonly RelayedMessage[]) {
      const c = client();
      // One chain per key: a key's next message is published after the previous one's
      // PubAck, and not at all once it failed, so a stream never stores a key's later
      // message without its earlier one. The relay hands over one message per key per
      // batch, so in practice every chain is one publish and all run at once.
      const chains = new Map<string, RelayedMessage[]>();
      for (const m of messages) {
        const k = m.key ?? `\u0000${m.id}`;
        const chain = chains.get(k);
        if (chain) chain.push(m);
        else chains.set(k, [m]);
      }
      const results = await Promise.allSettled(
        [...chains.values()].map(async (chain) => {
          for (const m of chain) {
            // Built once per message, whatever the number of subjects it goes to.
            const headers = toNatsHeaders(m);
            await Promise.all(subjectsFor(m.topic).map((subject) => publishOne(c, m, subject, headers)));
          }
        }),
      );
      const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
      if (failures.length === 0) {
        log.debug({ count: messages.length }, 'batch stored by JetStream');
        return;
      }
      // An outage fails the whole batch alike; say so, so the relay backs off instead of
      // counting attempts. Otherwise the first refusal stands for the batch (the relay
      // then tries its messages one by one and keeps each one's own reason).
      throw failures.find((e) => e instanceof SagaboxError && e.code === 'BROKER_UNREACHABLE') ?? failures[0];
    },
    async stop() {
      const h = held;
      held = undefined;
      js = undefined;
      await h?.close();
    },
  };
}
