import type { Logger } from '@sagabox/core';
import type { AsyncMessage, Channel, Connection } from 'rabbitmq-client';

/** One delivery and the channel it came on: its tag means something on that channel only. */
export interface Delivered {
  readonly message: AsyncMessage;
  readonly channel: Channel;
}

/** Options of {@link createQueueSubscription}. */
export interface QueueSubscriptionOptions {
  connection: Connection;
  queue: string;
  /** Declare the queue durable (true) or only check that it exists (false). */
  declareQueue: boolean;
  exchanges: readonly string[];
  bindings: readonly { exchange: string; routingKey: string }[];
  prefetch: number;
  onDelivery(d: Delivered): void;
  /** The channel closed: its deliveries not acknowledged go back to the queue. */
  onChannelLost(channel: Channel): void;
  onError(error: unknown): void;
  logger: Logger;
}

/** See {@link createQueueSubscription}. */
export interface QueueSubscription {
  /** Resolves once consuming, or once the first attempt failed (it retries in the background). */
  start(): Promise<void>;
  /** Acknowledges deliveries handled; those of a channel since closed are ignored (the broker redelivers them). */
  ack(delivered: readonly Delivered[]): void;
  /** Rejects one delivery, back to the queue. */
  requeue(d: Delivered): void;
  /** Whether `d` came on the open channel: one from a closed channel is redelivered, and can be dropped. */
  isCurrent(d: Delivered): boolean;
  /** Cancels consuming and closes the channel: every delivery not acknowledged goes back to the queue. */
  close(): Promise<void>;
}

const RETRY_LOW_MS = 250;
const RETRY_HIGH_MS = 5_000;

/**
 * A queue consumed on a channel of its own, with acknowledgements the consumer controls.
 * rabbitmq-client's `Consumer` acknowledges each message by itself, one frame per
 * message; a batch committed in one transaction is acknowledged here with one
 * `basic.ack` (`multiple`) for the run of delivery tags it completes. Tags above one
 * not settled yet (held by another batch, or waiting for a retry) are held back until
 * it settles, or acknowledged one by one once a quarter of the prefetch waits, so a
 * message in backoff never holds the window shut. Reconnects after a lost channel with
 * backoff, as the `Consumer` does.
 */
export function createQueueSubscription(o: QueueSubscriptionOptions): QueueSubscription {
  let channel: Channel | undefined;
  let closing = false;
  let retryTimer: NodeJS.Timeout | undefined;
  let retries = 0;
  let firstAttempt: (() => void) | undefined;
  // Delivery tags of the current channel in arrival (ascending) order, not yet
  // acknowledged or rejected; `head` skips the settled prefix.
  let order: number[] = [];
  let head = 0;
  const unsettled = new Set<number>();
  // Settled by an ack and not yet sent, because a lower tag is still unsettled.
  const held: number[] = [];
  const holdLimit = Math.max(1, Math.floor(o.prefetch / 4));

  const lowestUnsettled = (): number => {
    while (head < order.length && !unsettled.has(order[head]!)) head++;
    if (head > 4_096 && head * 2 > order.length) {
      order = order.slice(head);
      head = 0;
    }
    return head < order.length ? order[head]! : Infinity;
  };

  /** Sends what the settled prefix allows: one multiple ack for every held tag below the lowest unsettled one. */
  const flush = (ch: Channel): void => {
    if (held.length === 0) return;
    const low = lowestUnsettled();
    let top = -1;
    let rest = 0;
    for (const tag of held) {
      if (tag < low) top = Math.max(top, tag);
      else held[rest++] = tag;
    }
    held.length = rest;
    if (top >= 0) ch.basicAck({ deliveryTag: top, multiple: true });
    if (held.length >= holdLimit) {
      for (const tag of held) ch.basicAck({ deliveryTag: tag });
      held.length = 0;
    }
  };

  const current = (d: Delivered): Channel | undefined => (d.channel === channel && channel.active ? channel : undefined);

  const scheduleSetup = (): void => {
    if (closing || retryTimer) return;
    const delay = Math.min(RETRY_HIGH_MS, RETRY_LOW_MS * 2 ** Math.min(retries++, 5));
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      void setup();
    }, delay);
  };

  const lose = (ch: Channel): void => {
    if (channel !== ch) return;
    channel = undefined;
    order = [];
    head = 0;
    unsettled.clear();
    held.length = 0;
    o.onChannelLost(ch);
    scheduleSetup();
  };

  const setup = async (): Promise<void> => {
    let ch: Channel | undefined;
    try {
      ch = await o.connection.acquire({ emitErrorsFromChannel: true });
      const opened = ch;
      opened.on('error', (err: unknown) => o.onError(err));
      opened.once('close', () => lose(opened));
      channel = opened;
      await opened.queueDeclare(o.declareQueue ? { queue: o.queue, durable: true } : { queue: o.queue, passive: true });
      for (const exchange of o.exchanges) await opened.exchangeDeclare({ exchange, type: 'topic', durable: true });
      for (const b of o.bindings) await opened.queueBind({ queue: o.queue, exchange: b.exchange, routingKey: b.routingKey });
      await opened.basicQos({ prefetchCount: o.prefetch });
      // A queue deleted under the consumer cancels it with the channel still open: start over.
      opened.once('basic.cancel', () => void opened.close().catch(() => {}));
      await opened.basicConsume({ queue: o.queue }, (message) => {
        if (channel !== opened) return;
        order.push(message.deliveryTag);
        unsettled.add(message.deliveryTag);
        o.onDelivery({ message, channel: opened });
      });
      retries = 0;
      if (closing) await opened.close().catch(() => {});
      else o.logger.debug({ queue: o.queue }, 'consuming');
    } catch (err) {
      o.onError(err);
      if (ch && channel === ch) {
        // The failed declare closed the channel already (its close event schedules the retry).
        if (ch.active) await ch.close().catch(() => {});
      } else {
        scheduleSetup();
      }
    } finally {
      firstAttempt?.();
      firstAttempt = undefined;
    }
  };

  return {
    start() {
      closing = false;
      return new Promise<void>((resolve) => {
        firstAttempt = resolve;
        void setup();
      });
    },
    isCurrent: (d) => current(d) !== undefined,
    ack(delivered) {
      const ch = channel?.active ? channel : undefined;
      if (!ch) return;
      for (const d of delivered) {
        if (d.channel !== ch || !unsettled.delete(d.message.deliveryTag)) continue;
        held.push(d.message.deliveryTag);
      }
      flush(ch);
    },
    requeue(d) {
      const ch = current(d);
      if (!ch || !unsettled.delete(d.message.deliveryTag)) return;
      ch.basicNack({ deliveryTag: d.message.deliveryTag, requeue: true });
      flush(ch);
    },
    async close() {
      closing = true;
      clearTimeout(retryTimer);
      retryTimer = undefined;
      const ch = channel;
      channel = undefined;
      if (ch?.active) await ch.close().catch((err: unknown) => o.logger.warn({ err }, 'closing the consumer channel failed'));
    },
  };
}
