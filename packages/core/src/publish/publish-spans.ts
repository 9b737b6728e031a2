import { context as otelContext, SpanKind, trace, type Span } from '@opentelemetry/api';
import {
  coreTracer,
  endSpanWithError,
  injectTraceContext,
  MESSAGING_ATTRIBUTES as A,
  MESSAGING_SYSTEM,
  setAttributesIfRecording,
  traceContextOfHeaders,
  tracingIsOff,
} from '../shared/tracing.js';
import { encodeHeaders, HEADERS, type EncodedMessage, type OutboxMessage } from './envelope.js';

const START_ATTRIBUTES = { [A.system]: MESSAGING_SYSTEM, [A.operationType]: 'send', [A.operationName]: 'publish' };

/** The producer spans of one publish call, ended together when its statement is done. */
export interface PublishSpans {
  end(error?: unknown): void;
}

const NO_SPANS: PublishSpans = { end: () => {} };

/**
 * Starts one PRODUCER span per message, the child of the message's own `traceparent`
 * when it has one, else of the active context, and writes the span's context into the
 * message's encoded headers: the handler's span becomes its child. Without an SDK the
 * span is the parent's, so an active or given `traceparent` is carried on unchanged.
 */
export function startPublishSpans(list: readonly OutboxMessage[], encoded: EncodedMessage[]): PublishSpans {
  if (tracingIsOff()) return NO_SPANS;
  const active = otelContext.active();
  const spans: Span[] = [];
  try {
    for (let i = 0; i < list.length; i++) {
      const m = list[i]!;
      const e = encoded[i]!;
      const own = m.headers?.[HEADERS.traceparent];
      const parent = own !== undefined ? traceContextOfHeaders(m.headers, active) : active;
      const span = coreTracer().startSpan(`publish ${e.topic}`, { kind: SpanKind.PRODUCER, attributes: START_ATTRIBUTES }, parent);
      spans.push(span);
      setAttributesIfRecording(span, () => ({
        [A.destinationName]: e.topic,
        [A.messageId]: e.id,
        ...(m.headers?.[HEADERS.correlationId] !== undefined ? { [A.conversationId]: m.headers[HEADERS.correlationId] } : {}),
      }));
      const sc = span.spanContext();
      // Nothing to carry (no SDK, no active span), or the message carries it already.
      if (!trace.isSpanContextValid(sc) || own?.includes(sc.spanId)) continue;
      const headers = { ...m.headers };
      injectTraceContext(headers, trace.setSpan(parent, span));
      e.headers = encodeHeaders(headers, e.topic);
    }
  } catch (err) {
    for (const span of spans) endSpanWithError(span, err);
    throw err;
  }
  if (spans.length === 0) return NO_SPANS;
  return {
    end(error) {
      for (const span of spans) {
        if (error === undefined) span.end();
        else endSpanWithError(span, error);
      }
    },
  };
}
