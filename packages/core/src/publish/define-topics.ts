import type { StandardSchemaV1 } from '@standard-schema/spec';

export type { StandardSchemaV1 } from '@standard-schema/spec';
import { SagaboxError } from '../shared/errors.js';
import { describeValue } from '../shared/describe-value.js';

/** A topic's contract: a Standard Schema (zod, valibot, arktype ...) or `null` for "typed only". */
export type TopicContract = StandardSchemaV1 | null;

/** The payload type a contract describes. */
export type PayloadOf<C> = C extends StandardSchemaV1 ? StandardSchemaV1.InferOutput<C> : unknown;

/** A set of topic contracts, from {@link defineTopics}. */
export interface TopicRegistry<T extends Record<string, TopicContract> = Record<string, TopicContract>> {
  /** The topic contracts the registry was defined with, by topic. */
  readonly contracts: T;
  /** Validates `payload` against `topic`'s schema; resolves to the (possibly transformed) value. */
  validate(topic: string, payload: unknown): Promise<unknown>;
  /** A typed message builder: `topics.message('orders.created', payload)` checks the payload type at compile time. */
  message<K extends keyof T & string>(topic: K, payload: PayloadOf<T[K]>, rest?: { key?: string; headers?: Record<string, string>; id?: string }): {
    topic: K;
    payload: PayloadOf<T[K]>;
    key?: string;
    headers?: Record<string, string>;
    id?: string;
  };
}

/**
 * Declares topics with their payload contracts. Give the result to `publish` (and to
 * `createWorker`) as `topics` to validate payloads at publish and at consume; a
 * message that fails at consume goes to the dead letters as `invalid`.
 *
 * @example
 * const topics = defineTopics({
 *   'orders.created': z.object({ orderId: z.string(), total: z.number() }),
 *   'orders.cancelled': null, // no runtime check
 * });
 * await publish(trx, topics.message('orders.created', { orderId: 'o1', total: 10 }), { topics });
 */
export function defineTopics<T extends Record<string, TopicContract>>(contracts: T): TopicRegistry<T> {
  return {
    contracts,
    async validate(topic, payload) {
      const contract = contracts[topic];
      if (contract === undefined) {
        throw new SagaboxError('INVALID_TOPIC', `topic ${describeValue(topic)} is not declared in defineTopics`, { details: { topic } });
      }
      if (contract === null) return payload;
      const result = await contract['~standard'].validate(payload);
      if (result.issues) {
        const issues = result.issues.map((i) => `${formatPath(i.path)}${i.message}`);
        throw new SagaboxError('VALIDATION_FAILED', `payload for topic ${topic} is invalid: ${issues.join('; ')}`, {
          details: { topic, issues },
        });
      }
      return result.value;
    },
    message(topic, payload, rest = {}) {
      return { ...rest, topic, payload };
    },
  };
}

function formatPath(path: StandardSchemaV1.Issue['path']): string {
  if (!path || path.length === 0) return '';
  return path.map((p) => (typeof p === 'object' ? String(p.key) : String(p))).join('.') + ': ';
}
