// @sagabox/core/admin: what an operator (the CLI, the dashboard, a runbook script) calls
// on a running system: dead letters, stats, messages and actions on them, half-message
// decisions, what needs attention, direct routes and queue flow limits.
export {
  countDeadLetters,
  listDeadLetters,
  MAX_DEAD_LETTER_LIST_LIMIT,
  outboxStats,
  purgeDeadLetters,
  queueStats,
  replayDeadLetters,
  type AdminOptions,
  type DeadLetter,
  type DeadLetterFilter,
  type OutboxStats,
  type QueueStats,
} from './admin/admin.js';
export {
  getMessage,
  listMessages,
  DEFAULT_MESSAGE_PAGE_SIZE,
  MAX_MESSAGE_PAGE_SIZE,
  MESSAGE_STATES,
  type MessageDetail,
  type MessageFilter,
  type MessagePage,
  type MessageState,
  type MessageSummary,
} from './admin/messages.js';
export { pauseQueue, resumeQueue, type QueuePauseResult } from './admin/queue-pause.js';
export {
  cancelMessages,
  deleteMessages,
  retryMessages,
  DEFAULT_MESSAGE_ACTION_LIMIT,
  MAX_ACTION_REASON_LENGTH,
  MAX_MESSAGE_ACTION_LIMIT,
  type CancelMessagesOptions,
  type MessageActionFilter,
  type MessageActionOptions,
  type MessageActionResult,
} from './admin/message-actions.js';
export { decideHalfMessage, type OperatorDecisionOptions } from './admin/half-message-decision.js';
export {
  needsAttention,
  DEFAULT_ATTENTION_LIMIT,
  DEFAULT_ATTENTION_SCAN_LIMIT,
  type AttentionOptions,
  type AttentionReport,
  type OverdueSaga,
} from './admin/needs-attention.js';
export {
  halfMessageHistory,
  listHalfMessages,
  purgeHalfMessageDecisions,
  type HalfMessageDecisionRecord,
  type ListHalfMessagesOptions,
  type PreparedHalfMessageInfo,
} from './half-messages/half-message-admin.js';
export { addDirectRoute, listDirectRoutes, removeDirectRoute, type DirectRoute } from './publish/direct-routes.js';
export {
  getQueueLimits,
  setQueueLimits,
  DEFAULT_PRIORITY_AGING_MS,
  MAX_FLOW_LIMIT,
  PRIORITY_AGING_MS_RANGE,
  type QueueLimits,
} from './flow-control/queue-limits.js';
export {
  maintainStorage,
  DEFAULT_MAINTENANCE_LOCK_TIMEOUT_MS,
  DEFAULT_PARTITION_AHEAD_MS,
  DEFAULT_PARTITION_MS,
  MAX_RETENTION_MS,
  type MaintainStorageOptions,
  type PartitionMaintenance,
  type RetainedData,
  type StorageMaintenance,
  type StorageRetention,
} from './retention/maintain-storage.js';
export {
  storageHealth,
  DEFAULT_VACUUM_BLOCKED_AFTER_MS,
  type StorageHealth,
  type StorageHealthOptions,
  type TableHealth,
  type VacuumHorizonHolder,
} from './admin/storage-health.js';
