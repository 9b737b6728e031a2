import {
  InvalidOptionsError,
  SagaboxError,
  silentLogger,
  type Destination,
  type Logger,
  type RelayedMessage,
} from '@sagabox/core';
import { topicMatcher } from '@sagabox/core/extension';
import { createInbox, errors as natsErrors, type Msg, type MsgHdrs, type NatsConnection, type Subscription } from '@nats-io/transport-node';
import { holdConnection, type HeldConnection, type NatsConnectionSource } from './nats-connection.js';
import { natsHeaderBlock } from './nats-headers.js';

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
 * Headers already encoded, for `publish`: nats.js 3's publish reads the headers it is
 * given only through their `encode()` (a method of its implementation, not of the
 * `MsgHdrs` type), so the block is handed over as it is. The destination tests read the
 * headers back from the stream.
 */
function encodedHeaders(block: Uint8Array): MsgHdrs {
  return { encode: () => block } as Partial<MsgHdrs> as MsgHdrs;
}

/** What the PubAck inbox hands a waiting publish: the reply, or why none will come. */
type PubAckAnswer = Msg | 'timeout' | 'closed';

/**
 * The destination's own reply subscription for PubAcks: each publish gets a token on
 * one wildcard subscription, instead of nats.js's request machinery, which costs a timer,
 * a request object and an error object (with its stack) per message.
 */
interface PubAckInbox {
  readonly nc: NatsConnection;
  /** Registers a waiter; returns its token. */
  expect(onAnswer: (answer: PubAckAnswer) => void): string;
  replySubject(token: string): string;
  /** Hands `answer` to the token's waiter if it still waits; true if it did. */
  answer(token: string, answer: PubAckAnswer): boolean;
  /** Drops a waiter without an answer; true if it was waiting. */
  forget(token: string): boolean;
  /** Unsubscribes; every waiter left gets 'closed'. */
  close(): void;
}

function openPubAckInbox(nc: NatsConnection, log: Logger): PubAckInbox {
  // An application's own connection may have an inboxPrefix its permissions allow.
  const prefix = createInbox((nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix);
  const waiting = new Map<string, (answer: PubAckAnswer) => void>();
  let next = 0;
  const answer = (token: string, a: PubAckAnswer): boolean => {
    const w = waiting.get(token);
    if (w === undefined) return false;
    waiting.delete(token);
    w(a);
    return true;
  };
  const closeAll = (): void => {
    for (const token of [...waiting.keys()]) answer(token, 'closed');
  };
  const sub: Subscription = nc.subscribe(`${prefix}.*`, {
    callback: (err, msg) => {
      if (err) {
        log.warn({ err }, 'PubAck subscription error');
        return;
      }
      // A late PubAck (after its wave timed out) finds no waiter and is dropped.
      answer(msg.subject.slice(prefix.length + 1), msg);
    },
  });
  void sub.closed.then(closeAll, closeAll);
  return {
    nc,
    expect(onAnswer) {
      const token = (next++).toString(36);
      waiting.set(token, onAnswer);
      return token;
    },
    replySubject: (token) => `${prefix}.${token}`,
    answer,
    forget: (token) => waiting.delete(token),
    close() {
      if (!sub.isClosed()) sub.unsubscribe();
      closeAll();
    },
  };
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
 * PubAcks come back on one subscription the destination holds on its connection,
 * `<inbox prefix>.<unique id>.*` (the connection's `inboxPrefix`, `_INBOX` by default,
 * which a user's permissions must allow as for any request), with one timer per batch.
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
  let acks: PubAckInbox | undefined;
  const connection = (): NatsConnection => {
    held ??= holdConnection(options, `sagabox-${name}`, log);
    const nc = held.usable();
    if (!nc) throw new SagaboxError('BROKER_UNREACHABLE', `${name}: not connected to NATS`, { details: { destination: name } });
    return nc;
  };
  const inboxOf = (nc: NatsConnection): PubAckInbox => {
    if (acks?.nc !== nc) {
      acks?.close();
      acks = openPubAckInbox(nc, log);
    }
    return acks;
  };

  const unreachable = (m: RelayedMessage, subject: string, reason: string, cause?: unknown): SagaboxError =>
    new SagaboxError('BROKER_UNREACHABLE', `${name}: no PubAck for message ${m.id} on ${subject}: ${reason}`, { cause, details: { messageId: m.id, subject } });
  const rejected = (m: RelayedMessage, subject: string, reason: string, cause?: unknown): SagaboxError =>
    new SagaboxError('BROKER_REJECTED', `JetStream refused message ${m.id} on ${subject}: ${reason}`, { cause, details: { messageId: m.id, subject } });

  /** What a reply on the PubAck inbox means for the message: undefined when the stream stored it. */
  const answerProblem = (m: RelayedMessage, subject: string, reply: Msg): SagaboxError | undefined => {
    if (reply.data.length === 0 && reply.headers?.code === 503) {
      return new SagaboxError('BROKER_REJECTED', `no JetStream stream takes subject ${subject} (no responders)`, { details: { messageId: m.id, subject } });
    }
    let ack: { stream?: unknown; error?: { code?: number; err_code?: number; description?: string } };
    try {
      ack = JSON.parse(reply.string()) as typeof ack;
    } catch (err) {
      return rejected(m, subject, `the PubAck is not JSON: ${errorText(err)}`, err);
    }
    if (ack.error) return rejected(m, subject, `${ack.error.description ?? 'error'} (code ${ack.error.code ?? '?'}, err_code ${ack.error.err_code ?? '?'})`);
    if (typeof ack.stream !== 'string' || ack.stream === '') return rejected(m, subject, 'invalid PubAck (no stream)');
    return undefined;
  };

  /**
   * Publishes every item at once with a reply subject on this destination's inbox and
   * waits for all their PubAcks under one timer; resolves to each item's problem
   * (undefined: stored by the stream).
   */
  const publishWave = (nc: NatsConnection, items: readonly { m: RelayedMessage; subject: string; headers: Uint8Array }[]): Promise<(SagaboxError | undefined)[]> => {
    const inbox = inboxOf(nc);
    const maxPayload = nc.info?.max_payload;
    const problems = new Array<SagaboxError | undefined>(items.length);
    const tokens: string[] = [];
    return new Promise((resolve) => {
      let left = items.length;
      let timer: NodeJS.Timeout | undefined;
      const settle = (i: number, problem: SagaboxError | undefined): void => {
        problems[i] = problem;
        if (--left > 0) return;
        clearTimeout(timer);
        resolve(problems);
      };
      for (const [i, { m, subject, headers }] of items.entries()) {
        const bytes = Buffer.byteLength(m.payload, 'utf8');
        if (maxPayload !== undefined && bytes > maxPayload) {
          settle(i, new SagaboxError('PAYLOAD_TOO_LARGE', `message ${m.id} is ${bytes} bytes, more than the NATS server's max_payload of ${maxPayload}`, { details: { messageId: m.id, bytes, maxPayload } }));
          continue;
        }
        const token = inbox.expect((reply) => {
          if (reply === 'timeout') settle(i, unreachable(m, subject, `no answer within ${timeoutMs} ms`));
          else if (reply === 'closed') settle(i, unreachable(m, subject, 'the connection closed'));
          else settle(i, answerProblem(m, subject, reply));
        });
        tokens.push(token);
        try {
          nc.publish(subject, m.payload, { reply: inbox.replySubject(token), headers: encodedHeaders(headers) });
        } catch (err) {
          inbox.forget(token);
          settle(i, isUnreachable(err) ? unreachable(m, subject, errorText(err), err) : rejected(m, subject, errorText(err), err));
        }
      }
      if (left === 0) return;
      // One timer for the whole wave: a PubAck not back by then counts as the server out of reach.
      timer = setTimeout(() => {
        for (const token of tokens) inbox.answer(token, 'timeout');
      }, timeoutMs);
    });
  };

  return {
    name,
    external: true,
    matches: (topic) => subjectsFor(topic).length > 0,
    async start() {
      held ??= holdConnection(options, `sagabox-${name}`, log);
    },
    async deliver(messages: readonly RelayedMessage[]) {
      const nc = connection();
      // One chain per key: a key's next message is published after the previous one's
      // PubAck, and not at all once it failed, so a stream never stores a key's later
      // message without its earlier one. The chains advance in waves (every chain's
      // next message at once); the relay hands over one message per key per batch, so
      // in practice a batch is one wave.
      const chains = new Map<string, RelayedMessage[]>();
      for (const m of messages) {
        const k = m.key ?? `\u0000${m.id}`;
        const chain = chains.get(k);
        if (chain) chain.push(m);
        else chains.set(k, [m]);
      }
      const failures: SagaboxError[] = [];
      let live = [...chains.values()];
      for (let step = 0; live.length > 0; step++) {
        const items: { m: RelayedMessage; subject: string; headers: Uint8Array; chain: RelayedMessage[] }[] = [];
        const failed = new Set<RelayedMessage[]>();
        for (const chain of live) {
          const m = chain[step];
          if (m === undefined) continue;
          let headers: Uint8Array;
          try {
            // Built once per message, whatever the number of subjects it goes to.
            headers = natsHeaderBlock(m);
          } catch (err) {
            failures.push(err as SagaboxError);
            failed.add(chain);
            continue;
          }
          for (const subject of subjectsFor(m.topic)) items.push({ m, subject, headers, chain });
        }
        const problems = items.length > 0 ? await publishWave(nc, items) : [];
        for (const [i, problem] of problems.entries()) {
          if (problem === undefined) continue;
          failures.push(problem);
          failed.add(items[i]!.chain);
        }
        live = live.filter((chain) => chain.length > step + 1 && !failed.has(chain));
      }
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
      acks?.close();
      acks = undefined;
      await h?.close();
    },
  };
}
