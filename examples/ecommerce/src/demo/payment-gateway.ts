import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@sagabox/core';

/** A charge as the fake gateway keeps it. */
export interface GatewayCharge {
  id: string;
  idempotencyKey: string;
  orderId: string;
  amountCents: number;
  status: 'succeeded' | 'declined';
  refunded: boolean;
  createdAt: string;
}

/** Options of {@link startPaymentGateway}. */
export interface PaymentGatewayOptions {
  /**
   * Share of requests that fail with 503, from 0 to 1. Half of them fail before the
   * gateway does anything, half after it recorded the charge or refund (the caller
   * sees an error for something that happened), which is what makes idempotency keys
   * necessary. Default 0.
   */
  failureRate?: number;
  /** Random latency added to every request, up to this many milliseconds. Default 10. */
  maxLatencyMs?: number;
  /** Random numbers from 0 to 1; default Math.random. */
  random?: () => number;
  logger: Logger;
}

/** A running fake payment gateway. */
export interface PaymentGateway {
  readonly url: string;
  /** Every charge it ever recorded, for the consistency check. */
  charges(): GatewayCharge[];
  /** Requests answered with an injected 503. */
  injectedFailures(): number;
  stop(): Promise<void>;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body === '' ? {} : (JSON.parse(body) as Record<string, unknown>);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/**
 * Starts the demo's stand-in for an external payment provider: an HTTP server that
 * charges cards and refunds orders, deduplicates charges by idempotency key, and fails
 * a configurable share of requests. It runs in the demo's supervisor process, which
 * chaos never kills — it is the "outside world" whose state the payments service
 * cannot roll back.
 *
 * - `POST /charges` `{ idempotencyKey, orderId, amountCents, card }`: `200` with the
 *   charge (`status` `succeeded`, or `declined` for card `tok_declined`); the same
 *   idempotency key returns the same charge.
 * - `GET /charges/:idempotencyKey`: the charge, or `404`.
 * - `POST /refunds` `{ orderId }`: refunds the order's succeeded charges; idempotent.
 *
 * @example
 * const gateway = await startPaymentGateway({ failureRate: 0.05, logger });
 * const client = createGatewayClient(gateway.url);
 */
export async function startPaymentGateway(options: PaymentGatewayOptions): Promise<PaymentGateway> {
  const random = options.random ?? Math.random;
  const failureRate = options.failureRate ?? 0;
  const maxLatencyMs = options.maxLatencyMs ?? 10;
  const log = options.logger.child({ component: 'payment-gateway' });
  const byKey = new Map<string, GatewayCharge>();
  let injected = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://gateway');
    await new Promise((r) => setTimeout(r, random() * maxLatencyMs));
    const roll = random();
    const failBefore = roll < failureRate / 2;
    const failAfter = !failBefore && roll < failureRate;
    if (failBefore) {
      injected++;
      return send(res, 503, { error: 'gateway unavailable (injected, before)' });
    }
    if (req.method === 'POST' && url.pathname === '/charges') {
      const body = await readJson(req);
      const { idempotencyKey, orderId, amountCents, card } = body as { idempotencyKey: string; orderId: string; amountCents: number; card: string };
      if (typeof idempotencyKey !== 'string' || typeof orderId !== 'string' || !Number.isInteger(amountCents)) {
        return send(res, 400, { error: 'idempotencyKey, orderId and amountCents are required' });
      }
      let charge = byKey.get(idempotencyKey);
      if (!charge) {
        charge = {
          id: `ch_${randomUUID()}`,
          idempotencyKey,
          orderId,
          amountCents,
          status: card === 'tok_declined' ? 'declined' : 'succeeded',
          refunded: false,
          createdAt: new Date().toISOString(),
        };
        byKey.set(idempotencyKey, charge);
        log.debug({ orderId, chargeId: charge.id, status: charge.status }, 'charge recorded');
      }
      if (failAfter) {
        injected++;
        return send(res, 503, { error: 'gateway unavailable (injected, after)' });
      }
      return send(res, 200, charge);
    }
    if (req.method === 'GET' && url.pathname.startsWith('/charges/')) {
      const charge = byKey.get(decodeURIComponent(url.pathname.slice('/charges/'.length)));
      return charge ? send(res, 200, charge) : send(res, 404, { error: 'no such charge' });
    }
    if (req.method === 'POST' && url.pathname === '/refunds') {
      const { orderId } = (await readJson(req)) as { orderId: string };
      let refunded = 0;
      for (const charge of byKey.values()) {
        if (charge.orderId === orderId && charge.status === 'succeeded' && !charge.refunded) {
          charge.refunded = true;
          refunded++;
        }
      }
      if (failAfter) {
        injected++;
        return send(res, 503, { error: 'gateway unavailable (injected, after)' });
      }
      return send(res, 200, { orderId, refunded });
    }
    return send(res, 404, { error: 'not found' });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => send(res, 500, { error: String(err) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  log.info({ port, failureRate }, 'payment gateway listening');
  return {
    url: `http://127.0.0.1:${port}`,
    charges: () => [...byKey.values()],
    injectedFailures: () => injected,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Thrown by {@link GatewayClient} calls that did not get an answer (timeout, 5xx, connection refused). */
export class GatewayUnavailableError extends Error {
  override readonly name = 'GatewayUnavailableError';
}

/** The payments service's view of the gateway. */
export interface GatewayClient {
  /** Charges a card; the same idempotency key always gives the same charge. */
  charge(request: { idempotencyKey: string; orderId: string; amountCents: number; card: string }): Promise<GatewayCharge>;
  /** The charge made with this idempotency key, or null when the gateway never saw it. */
  findCharge(idempotencyKey: string, signal?: AbortSignal): Promise<GatewayCharge | null>;
  /** Refunds every succeeded charge of the order. */
  refund(orderId: string): Promise<{ refunded: number }>;
}

/** Default timeout of one gateway request, in milliseconds. */
export const DEFAULT_GATEWAY_TIMEOUT_MS = 2_000;

/**
 * An HTTP client of the fake gateway (fetch, with a timeout). Every failure to get an
 * answer is a {@link GatewayUnavailableError}: the caller cannot know whether the
 * gateway acted, so it retries with the same idempotency key.
 */
export function createGatewayClient(baseUrl: string, timeoutMs = DEFAULT_GATEWAY_TIMEOUT_MS): GatewayClient {
  const call = async (method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<{ status: number; body: any }> => {
    const timeout = AbortSignal.timeout(timeoutMs);
    let res: Response;
    try {
      res = await fetch(`${baseUrl}${path}`, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (err) {
      throw new GatewayUnavailableError(`gateway ${method} ${path}: ${(err as Error).message}`, { cause: err });
    }
    const json: any = await res.json().catch(() => ({}));
    if (res.status >= 500) throw new GatewayUnavailableError(`gateway ${method} ${path}: ${res.status} ${json.error ?? ''}`);
    return { status: res.status, body: json };
  };
  return {
    async charge(request) {
      const { status, body } = await call('POST', '/charges', request);
      if (status !== 200) throw new Error(`gateway refused the charge: ${status} ${body.error}`);
      return body as GatewayCharge;
    },
    async findCharge(idempotencyKey, signal) {
      const { status, body } = await call('GET', `/charges/${encodeURIComponent(idempotencyKey)}`, undefined, signal);
      return status === 404 ? null : (body as GatewayCharge);
    },
    async refund(orderId) {
      const { status, body } = await call('POST', '/refunds', { orderId });
      if (status !== 200) throw new Error(`gateway refused the refund: ${status} ${body.error}`);
      return body as { refunded: number };
    },
  };
}
