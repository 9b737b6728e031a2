import type { Kysely } from 'kysely';
import type pg from 'pg';
import type { Logger } from '../shared/logger.js';
import { kyselyOnClient } from './client-kysely.js';
import type { HandlerContext } from './worker-options.js';

/**
 * A handler call's context, for the worker and for the broker consumers. A class, so
 * that every call's context has one shape and its getters sit on the prototype: an
 * object literal with getters is built through the runtime and left in dictionary mode,
 * which every message paid for (and every read of it after). The AbortController and
 * the kysely instance are made when first read: most handlers use neither, and an
 * AbortController costs more than the rest of a call.
 */
export class CallContext implements HandlerContext {
  #abort: AbortController | undefined;
  #db: Kysely<any> | undefined;

  /**
   * @param client The connection of the call's transaction.
   * @param consumer The consumer name the inbox records the message under.
   * @param logger The logger handed to the handler.
   */
  constructor(
    /** The connection of the call's transaction. */
    readonly client: pg.PoolClient,
    /** The consumer name the inbox records the message under. */
    readonly consumer: string,
    /** The logger handed to the handler. */
    readonly logger: Logger,
  ) {}

  /** Aborted when the call times out; made when first read. */
  get signal(): AbortSignal {
    return (this.#abort ??= new AbortController()).signal;
  }

  /** A Kysely instance on `client`; made when first read. */
  get db(): Kysely<any> {
    return (this.#db ??= kyselyOnClient(this.client));
  }

  /** Aborts the signal (made now when the handler never read it), with `reason`. */
  abort(reason: unknown): void {
    (this.#abort ??= new AbortController()).abort(reason);
  }

  /** Why the signal was aborted, if it was. */
  get abortReason(): unknown {
    return this.#abort?.signal.reason;
  }
}
