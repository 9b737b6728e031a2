export * from './errors.js';
export * from './schema-name.js';
export * from './logger.js';
export * from './bearer-token.js';
export * from './migrate.js';
export * from './parse-sql-migration.js';
export * from './sql-migration-provider.js';
export * from './database-unreachable.js';
export * from './envelope.js';
export * from './executor.js';
export * from './topic-name.js';
export * from './define-topics.js';
export * from './publish.js';
export * from './destination.js';
export * from './create-queue-destination.js';
export * from './create-relay.js';
export * from './handler-outcome.js';
export * from './create-worker.js';
export * from './retry-policy.js';
export { kyselyOnClient } from './client-kysely.js';
export { createListener, type Listener, type ListenerOptions } from './listener.js';
export * from './admin.js';
export * from './queue-limits.js';
export * from './direct-routes.js';
export * from './half-message.js';
export {
  DEFAULT_CHECK_BACKOFF,
  DEFAULT_CHECK_BATCH_SIZE,
  DEFAULT_CHECK_INTERVAL_MS,
  DEFAULT_CHECK_TIMEOUT_MS,
  DEFAULT_MAX_CHECKS,
  type CheckBackEvents,
  type CheckBackOptions,
  type CheckBackoff,
  type HalfMessage,
  type HalfMessageCheckContext,
  type HalfMessageCheckDecision,
  type HalfMessageChecker,
  type HalfMessageVerdict,
} from './check-back.js';
export * from './half-message-admin.js';
