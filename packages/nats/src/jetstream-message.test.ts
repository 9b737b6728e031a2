import { describe, expect, it } from 'vitest';
import type { JsMsg } from '@nats-io/jetstream';
import { deliveryInfo } from './jetstream-message.js';

/** A delivery with only a reply subject; its `info` stands for nats.js's, which the fallback reads. */
const delivery = (reply: string, info?: object): JsMsg =>
  ({
    reply,
    get info() {
      if (!info) throw new Error('unable to parse delivery info - not a jetstream message');
      return info;
    },
  }) as unknown as JsMsg;

describe('deliveryInfo', () => {
  it('reads stream, stream sequence and delivery count from both reply layouts', () => {
    // $JS.ACK.<domain>.<account hash>.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<time>.<pending>.<token>
    expect(deliveryInfo(delivery('$JS.ACK._.hash.ORDERS.billing.3.1042.77.1733338800000000000.12.x7Kq'))).toEqual({
      stream: 'ORDERS',
      streamSequence: 1042,
      deliveryCount: 3,
    });
    // Without the random token (11 tokens), and with a domain.
    expect(deliveryInfo(delivery('$JS.ACK.hub.acc.S-1.c_2.1.9.9.1733338800000000000.0'))).toEqual({ stream: 'S-1', streamSequence: 9, deliveryCount: 1 });
    // The old layout: $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<delivery seq>.<time>.<pending>
    expect(deliveryInfo(delivery('$JS.ACK.ORDERS.billing.2.500.40.1733338800000000000.0'))).toEqual({ stream: 'ORDERS', streamSequence: 500, deliveryCount: 2 });
  });

  it('leaves any other subject to nats.js, which throws for one it cannot read either', () => {
    expect(() => deliveryInfo(delivery('_INBOX.abc.def'))).toThrow(/not a jetstream message/);
    // Ten tokens: neither layout.
    expect(() => deliveryInfo(delivery('$JS.ACK.a.b.c.d.e.f.g.h'))).toThrow(/not a jetstream message/);
    const other = { stream: 'X', streamSequence: 1, deliveryCount: 1, consumer: 'c' };
    expect(deliveryInfo(delivery('$JS.ACK.too.short', other))).toEqual({ stream: 'X', streamSequence: 1, deliveryCount: 1 });
  });
});
