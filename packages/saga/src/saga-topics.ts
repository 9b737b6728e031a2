import { HEADERS, type QueueRoute } from '@sagabox/core';
import { validateQueueName, validateTopic } from '@sagabox/core/extension';

/** Default topic participants reply to (the `reply-to` header of saga commands). */
export const DEFAULT_SAGA_REPLY_TOPIC = 'sagabox.saga.reply';
/** Default topic of the orchestrator's own messages: step timeouts, wake-ups, cancel and retry requests. */
export const DEFAULT_SAGA_CONTROL_TOPIC = 'sagabox.saga.control';
/** Default queue the orchestrator consumes. */
export const DEFAULT_SAGA_QUEUE = 'sagabox.sagas';

/**
 * Headers of saga commands. Participants echo every one of them on their reply (the
 * {@link participant} helper does): the orchestrator applies a reply only when its
 * `saga-step-token` is the token of the step in flight.
 */
export const SAGA_HEADERS = {
  /** The saga instance id (also the `correlation-id`). */
  sagaId: HEADERS.sagaId,
  /** Where to publish the reply. */
  replyTo: HEADERS.replyTo,
  /** Token of this send of this step; a fresh one for every send. */
  stepToken: 'saga-step-token',
  /** Step name. */
  step: 'saga-step',
  /** `command` or `compensation`. */
  phase: 'saga-phase',
  /** Send number of this step's command or compensation, from 1. */
  attempt: 'saga-attempt',
} as const;

/** Topics and schema shared by the saga functions; every field has a default. */
export interface SagaTopicOptions {
  /** sagabox schema of the orchestrator's database. Default `'sagabox'`. */
  schema?: string;
  /** Reply topic. Default {@link DEFAULT_SAGA_REPLY_TOPIC}. */
  replyTopic?: string;
  /** Control topic (timeouts, wake-ups, cancel, retry). Default {@link DEFAULT_SAGA_CONTROL_TOPIC}. */
  controlTopic?: string;
}

/** {@link SagaTopicOptions} with defaults filled in. */
export interface SagaTopics {
  /** sagabox's schema the topics belong to. */
  schema: string;
  /** The topic participants' replies are published to. */
  replyTopic: string;
  /** The topic of the orchestrator's own control messages (timeouts, cancels). */
  controlTopic: string;
}

/** Fills in defaults and validates the topic names. */
export function resolveSagaTopics(options: SagaTopicOptions = {}): SagaTopics {
  return {
    schema: options.schema ?? 'sagabox',
    replyTopic: validateTopic(options.replyTopic ?? DEFAULT_SAGA_REPLY_TOPIC),
    controlTopic: validateTopic(options.controlTopic ?? DEFAULT_SAGA_CONTROL_TOPIC),
  };
}

/**
 * The relay routes that bring replies and control messages to the orchestrator's queue.
 * Give them to the relay of the orchestrator's database (control messages and replies of
 * participants sharing that database) and, in `createQueueDestination({ pool:
 * orchestratorPool, routes })`, to the relay of every participant's database.
 *
 * @example
 * const relay = createRelay({
 *   pool: inventoryPool,
 *   destinations: [createQueueDestination({ pool: orchestratorPool, routes: sagaRoutes() })],
 * });
 */
export function sagaRoutes(options: SagaTopicOptions & { queue?: string } = {}): QueueRoute[] {
  const topics = resolveSagaTopics(options);
  const queue = validateQueueName(options.queue ?? DEFAULT_SAGA_QUEUE);
  return [
    { topic: topics.replyTopic, queue },
    { topic: topics.controlTopic, queue },
  ];
}
