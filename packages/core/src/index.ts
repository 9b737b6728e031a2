// @sagabox/core: what an application calls. Publish in its own transaction, relay the
// outbox, consume with the inbox, half messages for side effects outside Postgres.
// Operator calls live in '@sagabox/core/admin', the schema in '@sagabox/core/migrate',
// building blocks for packages that extend sagabox in '@sagabox/core/extension'.
export { SagaboxError, InvalidOptionsError, isSagaboxError, type SagaboxErrorCode } from './shared/errors.js';
export { DEFAULT_SCHEMA } from './shared/schema-name.js';
export { silentLogger, type Logger } from './shared/logger.js';
export type { Executor, KyselyLike } from './shared/executor.js';
export { DEFAULT_RETRY_POLICY, type RetryPolicy } from './shared/retry-policy.js';
export { DEFAULT_WAIT_FOR_DATABASE_MS, waitForDatabase, type WaitForDatabaseOptions } from './shared/wait-for-database.js';

export {
  DEFAULT_MAX_PAYLOAD_BYTES,
  HEADERS,
  MAX_HEADERS_BYTES,
  MAX_PAYLOAD_BYTES_LIMIT,
  MAX_PAYLOAD_DEPTH,
  MESSAGE_TIME_RANGE,
  PRIORITY_RANGE,
  type OutboxMessage,
} from './publish/envelope.js';
export { MAX_TOPIC_LENGTH } from './publish/topic-name.js';
export {
  defineTopics,
  type PayloadOf,
  type StandardSchemaV1,
  type TopicContract,
  type TopicRegistry,
} from './publish/define-topics.js';
export { publish, DEFAULT_NOTIFY_THROTTLE_MS, type PublishOptions, type PublishResult } from './publish/publish.js';

export type { DeliveryContext, Destination, RelayedMessage } from './relay/destination.js';
export {
  createQueueDestination,
  type QueueDestinationOptions,
  type QueueRoute,
} from './relay/create-queue-destination.js';
export {
  createRelay,
  DEFAULT_RELAY_BATCH_SIZE,
  DEFAULT_RELAY_BATCHES_IN_FLIGHT,
  DEFAULT_RELAY_POLL_INTERVAL_MS,
  DEFAULT_RELAY_RETRY,
  DEFAULT_STOP_TIMEOUT_MS,
  type Relay,
  type RelayEvents,
  type RelayOptions,
} from './relay/create-relay.js';

export { Outcome, type HandlerOutcome } from './worker/handler-outcome.js';
export { createWorker } from './worker/create-worker.js';
export {
  DEFAULT_HANDLER_TIMEOUT_MS,
  DEFAULT_INBOX_PURGE_INTERVAL_MS,
  DEFAULT_INBOX_RETENTION_MS,
  DEFAULT_LEASE_MS,
  DEFAULT_WORKER_STOP_TIMEOUT_MS,
  DEFAULT_WORKER_BATCH_SIZE,
  DEFAULT_WORKER_MAX_BATCH_SIZE,
  DEFAULT_WORKER_CONCURRENCY,
  DEFAULT_WORKER_POLL_INTERVAL_MS,
  type Handler,
  type HandlerCall,
  type HandlerCallOutcome,
  type HandlerContext,
  type Message,
  type Worker,
  type WorkerEvents,
  type WorkerOptions,
} from './worker/worker-options.js';
export { commitHandling, recordInInbox, recordManyInInbox, ROLLED_BACK_AT_COMMIT, type RecordInInboxOptions, type RecordManyInInboxOptions } from './worker/inbox.js';

export {
  prepare,
  commitHalfMessage,
  rollbackHalfMessage,
  DEFAULT_CHECK_AFTER_MS,
  MAX_CHECK_AFTER_MS,
  MAX_DECISION_NOTE_LENGTH,
  type HalfMessageDecisionOptions,
  type HalfMessageDecisionResult,
  type PrepareOptions,
  type PreparedHalfMessage,
} from './half-messages/half-message.js';
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
