/** The four services of the demo, each with its own database. */
export const SERVICE_NAMES = ['orders', 'inventory', 'payments', 'shipping'] as const;
/** One of {@link SERVICE_NAMES}. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** What a service process needs to know; the supervisor passes it as JSON. */
export interface ServiceConfig {
  /** Connection URL of every service's database (a relay writes into its neighbours' queues). */
  databases: Record<ServiceName, string>;
  /** Base URL of the fake payment gateway. */
  gatewayUrl: string;
  /** Port of the orders service's HTTP API, on 127.0.0.1. */
  ordersPort: number;
  /**
   * With `--broker rabbitmq`: the shipping service lives behind RabbitMQ. Its commands
   * leave the orders outbox for `exchange` and reach it from `shippingQueue`; its
   * replies leave its outbox for `exchange` and reach the orchestrator from `repliesQueue`.
   */
  rabbitmq?: RabbitMqLink;
}

/** Where the shipping service's messages cross RabbitMQ (names unique to one demo run). */
export interface RabbitMqLink {
  url: string;
  exchange: string;
  shippingQueue: string;
  repliesQueue: string;
}

/**
 * Timings of workers and relays in the demo. Leases are short so that the messages a
 * killed process held come back within seconds (the default of 30 s suits handlers
 * that run longer); polling is the guarantee, LISTEN/NOTIFY the fast path.
 */
export const DEMO_TIMINGS = {
  leaseMs: 5_000,
  pollIntervalMs: 250,
  /** A charge's half message is checked with the gateway when not decided within this. */
  checkAfterMs: 10_000,
  checkIntervalMs: 1_000,
  retry: { maxAttempts: 25, baseDelayMs: 100, maxDelayMs: 2_000 },
  stopTimeoutMs: 5_000,
} as const;

/** Which regions the shipping service delivers to. */
export const SUPPORTED_REGIONS = ['eu', 'us', 'uk'] as const;

/** The catalogue of the orders service: SKU to price in cents. */
export const CATALOG: Readonly<Record<string, number>> = {
  widget: 1_999,
  gadget: 4_999,
  gizmo: 999,
  'limited-edition': 24_999,
};

/** A running service: stop() lets work in flight finish and closes its pools. */
export interface RunningService {
  stop(): Promise<void>;
}
