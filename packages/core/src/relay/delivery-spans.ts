import { ROOT_CONTEXT, SpanKind, type Span } from '@opentelemetry/api';
import {
  coreTracer,
  endSpanWithError,
  MESSAGING_ATTRIBUTES as A,
  MESSAGING_SYSTEM,
  setAttributesIfRecording,
  traceContextOfHeaders,
  traceparentInJson,
  tracingIsOff,
} from '../shared/tracing.js';
import type { RelayedMessage } from './destination.js';

const START_ATTRIBUTES = { [A.system]: MESSAGING_SYSTEM, [A.operationType]: 'send', [A.operationName]: 'deliver' };

const NO_SPANS: DeliverySpans = { end: () => {} };

/** The spans of one delivery attempt of a batch to one destination, ended together. */
export interface DeliverySpans {
  end(error?: unknown): void;
}

/**
 * Starts one PRODUCER span per relayed message, the child of the span that published
 * it (its stored `traceparent`; a message without one starts a trace of its own), so
 * each message's trace shows its hop through the relay. The message keeps its
 * `traceparent`: its handler stays the child of the publish span.
 */
export function startDeliverySpans(destination: string, batch: readonly RelayedMessage[]): DeliverySpans {
  if (tracingIsOff()) return NO_SPANS;
  const spans: Span[] = [];
  for (const m of batch) {
    const parent = traceContextOfHeaders(traceparentInJson(m.headers), ROOT_CONTEXT);
    const span = coreTracer().startSpan(`deliver ${m.topic}`, { kind: SpanKind.PRODUCER, attributes: START_ATTRIBUTES }, parent);
    setAttributesIfRecording(span, () => ({
      [A.destinationName]: m.topic,
      [A.messageId]: m.id,
      [A.batchMessageCount]: batch.length,
      'sagabox.relay.destination': destination,
      'sagabox.delivery.attempt': m.attempts + 1,
    }));
    spans.push(span);
  }
  return {
    end(error) {
      for (const span of spans) {
        if (error === undefined) span.end();
        else endSpanWithError(span, error);
      }
    },
  };
}
