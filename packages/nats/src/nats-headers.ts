import type { JsMsg } from '@nats-io/jetstream';
import type { MsgHdrs } from '@nats-io/transport-node';
import { SagaboxError, type RelayedMessage } from '@sagabox/core';

/**
 * NATS header names sagabox writes beside the message's own headers. The id travels
 * in JetStream's `Nats-Msg-Id` (the stream deduplicates by it); the rest are sagabox's
 * envelope fields, which a NATS message has no place for.
 */
export const NATS_HEADERS = {
  messageId: 'Nats-Msg-Id',
  topic: 'Sagabox-Topic',
  key: 'Sagabox-Key',
  createdAt: 'Sagabox-Created-At',
  runAt: 'Sagabox-Run-At',
  expiresAt: 'Sagabox-Expires-At',
  priority: 'Sagabox-Priority',
  group: 'Sagabox-Group',
} as const;

const ENVELOPE_NAMES = new Set(Object.values(NATS_HEADERS).map((n) => n.toLowerCase()));

// NATS header lines are `Name: value\r\n`: a name is printable ASCII without ':' or
// spaces, a value has no CR or LF (nats.js enforces the same when it encodes).
const HEADER_NAME = /^[!-9;-~]+$/;
const HEADER_VALUE = /^[^\r\n]*$/;

const utf8Encoder = new TextEncoder();

/**
 * The NATS header block of one relayed message, encoded as nats.js encodes its headers
 * (`NATS/1.0`, then a `Name: value` line per header, values trimmed): the message's own
 * headers (traceparent, correlation-id, causation-id, reply-to, saga headers, ...) under
 * their names, then the envelope. Written directly because the relay sends one per
 * message and nats.js's headers object checks every name it appends against all the
 * others. Throws `BROKER_REJECTED` for a header NATS cannot carry (a name with ':' or
 * spaces, a value with a line break), so the relay dead-letters that message with the
 * reason.
 */
export function natsHeaderBlock(message: RelayedMessage): Uint8Array {
  let own: Record<string, unknown>;
  try {
    own = JSON.parse(message.headers) as Record<string, unknown>;
  } catch (err) {
    throw new SagaboxError('BROKER_REJECTED', `headers of message ${message.id} are not JSON`, { cause: err, details: { messageId: message.id } });
  }
  let block = 'NATS/1.0';
  // Own names are unique (JSON object keys) and never an envelope name, so no name repeats.
  for (const [name, value] of Object.entries(own ?? {})) {
    if (typeof value !== 'string' || !HEADER_NAME.test(name) || !HEADER_VALUE.test(value) || ENVELOPE_NAMES.has(name.toLowerCase())) {
      throw new SagaboxError(
        'BROKER_REJECTED',
        `header ${JSON.stringify(name)} of message ${message.id} cannot be carried as a NATS header (names: printable ASCII without ':' or spaces, not a sagabox envelope name; values: strings without line breaks)`,
        { details: { messageId: message.id, header: name } },
      );
    }
    block += `\r\n${name}: ${value.trim()}`;
  }
  for (const [what, value] of [['key', message.key], ['group', message.group]] as const) {
    if (value !== null && !HEADER_VALUE.test(value)) {
      throw new SagaboxError('BROKER_REJECTED', `${what} of message ${message.id} has a line break; NATS headers cannot carry it`, { details: { messageId: message.id } });
    }
  }
  block += `\r\n${NATS_HEADERS.messageId}: ${message.id.trim()}\r\n${NATS_HEADERS.topic}: ${message.topic.trim()}`;
  if (message.key !== null) block += `\r\n${NATS_HEADERS.key}: ${message.key.trim()}`;
  block += `\r\n${NATS_HEADERS.createdAt}: ${message.createdAt.toISOString()}`;
  if (message.runAt) block += `\r\n${NATS_HEADERS.runAt}: ${message.runAt.toISOString()}`;
  if (message.expiresAt) block += `\r\n${NATS_HEADERS.expiresAt}: ${message.expiresAt.toISOString()}`;
  if (message.priority !== 0) block += `\r\n${NATS_HEADERS.priority}: ${message.priority}`;
  if (message.group !== null) block += `\r\n${NATS_HEADERS.group}: ${message.group.trim()}`;
  return utf8Encoder.encode(`${block}\r\n\r\n`);
}

/** What a consumer reads back from a message's NATS headers; anything malformed is left out. */
export interface DecodedHeaders {
  /** The message's own headers (every header that is not sagabox's envelope or JetStream's `Nats-*`). */
  headers: Record<string, string>;
  msgId: string | undefined;
  topic: string | undefined;
  key: string | null;
  createdAt: Date | undefined;
  runAt: Date | undefined;
  expiresAt: Date | undefined;
  priority: number;
  group: string | null;
}

const date = (text: string | undefined): Date | undefined => {
  if (text === undefined || text === '') return undefined;
  const d = new Date(text);
  return Number.isNaN(d.getTime()) ? undefined : d;
};

/** Collects one message's headers, name by name, into {@link DecodedHeaders}; the first value of a name wins. */
class HeaderReader {
  private readonly own: Record<string, string> = {};
  private msgId: string | undefined;
  private topic: string | undefined;
  private key: string | undefined;
  private createdAt: string | undefined;
  private runAt: string | undefined;
  private expiresAt: string | undefined;
  private priority: string | undefined;
  private group: string | undefined;

  add(name: string, value: string): void {
    switch (name) {
      case NATS_HEADERS.messageId: this.msgId ??= value; return;
      case NATS_HEADERS.topic: this.topic ??= value; return;
      case NATS_HEADERS.key: this.key ??= value; return;
      case NATS_HEADERS.createdAt: this.createdAt ??= value; return;
      case NATS_HEADERS.runAt: this.runAt ??= value; return;
      case NATS_HEADERS.expiresAt: this.expiresAt ??= value; return;
      case NATS_HEADERS.priority: this.priority ??= value; return;
      case NATS_HEADERS.group: this.group ??= value; return;
    }
    // Every envelope name, and every `Nats-` one, starts with an N or an S: other names
    // (most of a message's own) skip the lower-casing and the look-up.
    const first = name.charCodeAt(0) | 0x20;
    if (first === 0x6e || first === 0x73) {
      const lower = name.toLowerCase();
      if (ENVELOPE_NAMES.has(lower) || lower.startsWith('nats-')) return;
    }
    // `=== undefined` rather than `in` (cheaper here): the same answer for every name, an
    // inherited one such as `constructor` being defined either way.
    if (this.own[name] === undefined) this.own[name] = value;
  }

  result(): DecodedHeaders {
    const priority = Number(this.priority ?? '0');
    return {
      headers: this.own,
      msgId: this.msgId,
      topic: this.topic || undefined,
      key: this.key ?? null,
      createdAt: date(this.createdAt),
      runAt: date(this.runAt),
      expiresAt: date(this.expiresAt),
      priority: Number.isInteger(priority) && Math.abs(priority) <= 32_767 ? priority : 0,
      group: this.group ?? null,
    };
  }
}

/**
 * Reads sagabox's envelope and the message's own headers from NATS headers written by
 * any producer. Foreign producers may send anything: a repeated header keeps its first
 * value, an unparsable date or priority is ignored, never thrown.
 */
export function fromNatsHeaders(h: MsgHdrs | undefined): DecodedHeaders {
  // One pass over the entries, since each by-name lookup of nats.js scans and copies the names.
  const r = new HeaderReader();
  if (h) {
    for (const [name, values] of h) {
      const value = values[0];
      if (value !== undefined) r.add(name, value);
    }
  }
  return r.result();
}

const utf8 = new TextDecoder();

/** The raw parts of a nats.js message this module reads; absent from other implementations. */
interface RawMsg {
  _rdata?: unknown;
  _msg?: { hdr?: unknown };
}

/**
 * {@link fromNatsHeaders} of a delivered message, read from its raw header block when
 * nats.js's message exposes it: a consumer reads every message's headers, and nats.js's
 * own decoding builds a map and checks every name against all the others. Lines are
 * read as nats.js reads them (`Name: value`, the value trimmed, the status line
 * skipped); a name NATS does not allow is left out. Any other message is read through
 * its `headers`.
 */
export function deliveredHeaders(msg: JsMsg): DecodedHeaders {
  const raw = (msg as { msg?: RawMsg }).msg;
  const hdr = raw?._msg?.hdr;
  const data = raw?._rdata;
  if (typeof hdr !== 'number' || !(data instanceof Uint8Array)) return fromNatsHeaders(msg.headers);
  const r = new HeaderReader();
  if (hdr > 0) {
    const text = utf8.decode(data.subarray(0, hdr));
    let start = text.indexOf('\r\n');
    while (start >= 0 && start < text.length) {
      start += 2;
      let end = text.indexOf('\r\n', start);
      if (end < 0) end = text.length;
      const colon = text.indexOf(':', start);
      if (colon > start && colon < end) {
        const name = text.slice(start, colon);
        if (HEADER_NAME.test(name)) r.add(name, text.slice(colon + 1, end).trim());
      }
      start = end;
    }
  }
  return r.result();
}
