// @sagabox/core/extension: building blocks for packages that extend sagabox (sagas,
// broker bridges, telemetry, the dashboard): run SQL on any executor, quote the schema,
// validate names as core does. Applications do not need them.
export { toRunQuery, type RunQuery } from './shared/executor.js';
export { quoteSchema, validateSchemaName } from './shared/schema-name.js';
export { topicMatcher, topicPatternRegex, validateQueueName, validateTopic } from './publish/topic-name.js';
export { assertNoProblems, backoffMs, checkInt, resolveRetryPolicy } from './shared/retry-policy.js';
export { isHandlerOutcome } from './worker/handler-outcome.js';
export { callHandler, isThenable, startHandlerSpan, type HandlerSpan, type HandlerCallResult } from './worker/handler-span.js';
export { kyselyOnClient } from './worker/client-kysely.js';
export { CallContext } from './worker/call-context.js';
export { databaseUnreachableError, describeConnectionTarget } from './shared/database-unreachable.js';
export { bearerTokenMatches } from './admin/bearer-token.js';
export { encodeMessage, encodePayload, encodeHeaders, isStorableText, type EncodedMessage } from './publish/envelope.js';
export { MESSAGING_ATTRIBUTES, MESSAGING_SYSTEM, injectTraceContext, traceContextOfHeaders, endSpanWithError, tracingIsOff } from './shared/tracing.js';
export { uuidv7 } from './shared/uuidv7.js';
export { beginWithInboxRecord, commitHandlingOrRolledBack } from './worker/inbox.js';
