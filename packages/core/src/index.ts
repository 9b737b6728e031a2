export * from './shared/errors.js';
export * from './shared/schema-name.js';
export * from './shared/logger.js';
export * from './admin/bearer-token.js';
export * from './migrate/migrate.js';
export * from './migrate/parse-sql-migration.js';
export * from './migrate/sql-migration-provider.js';
export * from './shared/database-unreachable.js';
export * from './publish/envelope.js';
export * from './shared/executor.js';
export * from './publish/topic-name.js';
export * from './publish/define-topics.js';
export * from './publish/publish.js';
export * from './relay/destination.js';
export * from './relay/create-queue-destination.js';
export * from './relay/create-relay.js';
export * from './worker/handler-outcome.js';
export * from './worker/create-worker.js';
export { recordInInbox, recordManyInInbox, type RecordInInboxOptions, type RecordManyInInboxOptions } from './worker/inbox.js';
export * from './shared/retry-policy.js';
export { kyselyOnClient } from './worker/client-kysely.js';
export { createListener, type Listener, type ListenerOptions } from './relay/listener.js';
export * from './admin/admin.js';
export * from './flow-control/queue-limits.js';
export * from './publish/direct-routes.js';
export * from './half-messages/half-message.js';
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
} from './half-messages/check-back.js';
export * from './half-messages/half-message-admin.js';
