import type pg from 'pg';

/** Publishes one message inside the caller's open transaction. */
export interface Publisher {
  /** `client` is inside BEGIN; `n` is the producer's sequence number, carried in the payload. */
  publish(client: pg.ClientBase, n: number): Promise<void>;
  close(): Promise<void>;
}

export interface ConsumerOptions {
  concurrency: number;
  /** Called at the very start of each handler with the payload's sequence number. */
  onMessage(n: number): void;
}

/** A running (or ready to run) consumer, worker pool or relay. */
export interface Consumer {
  /** Starts consuming; the timed part of a drain begins just before this call. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One system under one configuration, as far as a workload needs it. Every method
 * runs against a fresh database made for this variant alone.
 */
export interface Variant {
  id: string;
  label: string;
  /** sagabox, a peer, or a plain-SQL floor (W1 a and b). */
  kind: 'sagabox' | 'peer' | 'floor';
  /** Installs the system's schema (the business tables exist already). */
  install(url: string): Promise<void>;
  /** W1 and W3: how a producer publishes inside its transaction. */
  openPublisher?(url: string): Promise<Publisher>;
  /** W2 and W2r: puts `count` no-op messages where the consumer will find them (payload { n }). */
  seed?(url: string, count: number): Promise<void>;
  /** W2, W2r, W3: the consumer (or relay) process's part. */
  openConsumer?(url: string, options: ConsumerOptions): Promise<Consumer>;
  /** W2 and W2r: one row `{ busy: boolean }`, true while messages remain to be consumed. */
  busySql?: string;
  /** Handler calls a drain must see before it checks busySql (0 for a relay). */
  handlesMessages?: boolean;
  /** Notes printed under the results table: settings that matter for reading the numbers. */
  notes?: string;
}

export interface VariantSet {
  w1: Variant[];
  w2: Variant[];
  w2r: Variant[];
  w3: Variant[];
}
