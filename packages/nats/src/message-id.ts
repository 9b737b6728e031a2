import { createHash } from 'node:crypto';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The inbox id of a message consumed from JetStream. A sagabox producer's `Nats-Msg-Id`
 * is the message's UUID and is used as is. Another producer's message may carry any
 * `Nats-Msg-Id` or none: its id is then a name-based UUID (version 5 layout, SHA-1) of
 * that `Nats-Msg-Id`, or of the stream and stream sequence, which a redelivery repeats,
 * so the inbox still gives it one effect.
 */
export function inboxMessageId(msgId: string | undefined, stream: string, streamSequence: number): string {
  if (msgId !== undefined && UUID.test(msgId)) return msgId.toLowerCase();
  const name = msgId !== undefined && msgId !== '' ? `nats-msg-id:${msgId}` : `nats-stream-seq:${stream}:${streamSequence}`;
  const b = createHash('sha1').update(name).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const hex = b.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
