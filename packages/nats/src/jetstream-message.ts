import type { JsMsg } from '@nats-io/jetstream';
import type { JetStreamMessage } from './jetstream-consumer-options.js';
import { deliveredHeaders, type DecodedHeaders } from './nats-headers.js';
import { inboxMessageId } from './message-id.js';

/** A delivery read into what its handler gets, or why it cannot be handled at all. */
export type ReadDelivery =
  | { ok: true; message: JetStreamMessage; runAt: Date | undefined; expiresAt: Date | undefined }
  | { ok: false; id: string; reason: 'invalid'; error: string };

/** What the consumer reads of a delivery's reply subject: where the message sits in its stream, and its deliveries so far. */
export interface DeliveryInfo {
  stream: string;
  streamSequence: number;
  deliveryCount: number;
}

const ACK_PREFIX = '$JS.ACK.';

/**
 * {@link DeliveryInfo} of a JetStream delivery, read from its reply subject in the two
 * layouts nats.js's `info` reads (`$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.
 * <delivery seq>.<time>.<pending>`, and the same after `<domain>.<account hash>`), with
 * the same numbers; any other subject goes through `info` (which throws for it). `info`
 * splits the subject into a dozen strings and parses five numbers for every message,
 * where a consumer needs three tokens.
 */
export function deliveryInfo(msg: JsMsg): DeliveryInfo {
  // nats.js's JsMsg has `reply`; its type does not say so.
  const reply = (msg as { reply?: unknown }).reply;
  if (typeof reply === 'string' && reply.startsWith(ACK_PREFIX)) {
    let dots = 0;
    for (let at = reply.indexOf('.'); at >= 0; at = reply.indexOf('.', at + 1)) dots++;
    // Tokens before the stream name: 2 in the old layout (9 tokens), 4 in the new (11 or more).
    const before = dots === 8 ? 2 : dots >= 10 ? 4 : -1;
    if (before > 0) {
      let start = 0;
      for (let t = 0; t < before; t++) start = reply.indexOf('.', start) + 1;
      const streamEnd = reply.indexOf('.', start);
      const consumerEnd = reply.indexOf('.', streamEnd + 1);
      const deliveredEnd = reply.indexOf('.', consumerEnd + 1);
      const sequenceEnd = reply.indexOf('.', deliveredEnd + 1);
      return {
        stream: reply.slice(start, streamEnd),
        streamSequence: parseInt(reply.slice(deliveredEnd + 1, sequenceEnd), 10),
        deliveryCount: parseInt(reply.slice(consumerEnd + 1, deliveredEnd), 10),
      };
    }
  }
  const info = msg.info;
  return { stream: info.stream, streamSequence: info.streamSequence, deliveryCount: info.deliveryCount };
}

/**
 * Reads one JetStream delivery, whoever produced it. The topic is the `Sagabox-Topic`
 * header or else the subject; the payload must be JSON (an empty body reads as null);
 * headers that cannot be read are left out rather than failing the message. `decoded`
 * is `deliveredHeaders(msg)` when the caller has it already; the handler sees as
 * attempts the delivery count plus `failuresHere` (failed handlings not yet redelivered).
 */
export function readDelivery(msg: JsMsg, queue: string, decoded?: DecodedHeaders, failuresHere = 0): ReadDelivery {
  const h = decoded ?? deliveredHeaders(msg);
  const info = deliveryInfo(msg);
  const id = inboxMessageId(h.msgId, info.stream, info.streamSequence);
  let payload: unknown = null;
  if (msg.data.length > 0) {
    try {
      payload = JSON.parse(msg.string());
    } catch (err) {
      return { ok: false, id, reason: 'invalid', error: `payload is not JSON: ${(err as Error).message}` };
    }
  }
  return {
    ok: true,
    runAt: h.runAt,
    expiresAt: h.expiresAt,
    message: {
      id,
      queue,
      topic: h.topic ?? msg.subject,
      key: h.key,
      payload,
      headers: h.headers,
      attempts: info.deliveryCount + failuresHere,
      createdAt: h.createdAt ?? msg.time,
      priority: h.priority,
      group: h.group,
      subject: msg.subject,
      stream: info.stream,
      streamSequence: info.streamSequence,
    },
  };
}
