import type { JsMsg } from '@nats-io/jetstream';
import type { JetStreamMessage } from './jetstream-consumer-options.js';
import { deliveredHeaders, type DecodedHeaders } from './nats-headers.js';
import { inboxMessageId } from './message-id.js';

/** A delivery read into what its handler gets, or why it cannot be handled at all. */
export type ReadDelivery =
  | { ok: true; message: JetStreamMessage; runAt: Date | undefined; expiresAt: Date | undefined }
  | { ok: false; id: string; reason: 'invalid'; error: string };

/**
 * Reads one JetStream delivery, whoever produced it. The topic is the `Sagabox-Topic`
 * header or else the subject; the payload must be JSON (an empty body reads as null);
 * headers that cannot be read are left out rather than failing the message. `decoded`
 * is `deliveredHeaders(msg)` when the caller has it already; `attempts` is what
 * the handler sees (default: the delivery count).
 */
export function readDelivery(msg: JsMsg, queue: string, decoded?: DecodedHeaders, attempts?: number): ReadDelivery {
  const h = decoded ?? deliveredHeaders(msg);
  const info = msg.info;
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
      attempts: attempts ?? info.deliveryCount,
      createdAt: h.createdAt ?? msg.time,
      priority: h.priority,
      group: h.group,
      subject: msg.subject,
      stream: info.stream,
      streamSequence: info.streamSequence,
    },
  };
}
