import { context as otelContext, propagation, trace, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { HEADERS } from '@sagabox/core';

const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const getter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key] ?? carrier[key.toLowerCase()],
};

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * Returns `headers` plus the W3C trace context (`traceparent`, `tracestate`) of the
 * active OpenTelemetry context, for {@link publish}: the handler of the message can then
 * continue the trace with {@link traceContextOf}. Uses the globally registered
 * propagator (an OpenTelemetry SDK registers the W3C one); without one, the span
 * context is written as a W3C `traceparent` directly. With no active span it returns
 * the headers unchanged, so it is safe to call always. A `traceparent` the caller set
 * is kept.
 *
 * @param headers - the message's other headers (not modified; a copy is returned).
 * @param context - the context to propagate. Default: the active one.
 * @example
 * await publish(trx, { topic: 'orders.created', payload, headers: withTraceContext({ 'correlation-id': orderId }) });
 */
export function withTraceContext(headers: Record<string, string> = {}, context: Context = otelContext.active()): Record<string, string> {
  const out = { ...headers };
  if (out[HEADERS.traceparent] !== undefined) return out;
  propagation.inject(context, out, setter);
  if (out[HEADERS.traceparent] === undefined) {
    const span = trace.getSpanContext(context);
    if (span && trace.isSpanContextValid(span)) {
      out[HEADERS.traceparent] = `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
      const state = span.traceState?.serialize();
      if (state) out.tracestate = state;
    }
  }
  return out;
}

/**
 * The OpenTelemetry context carried by a message's headers (its producer's span as a
 * remote parent), to continue the trace in a handler. Without trace headers (or with a
 * malformed one) it returns `base` unchanged.
 *
 * @param message - anything with string `headers`, such as a handler's `Message`.
 * @param base - the context to extend. Default: the active one.
 * @example
 * const tracer = trace.getTracer('billing');
 * const handler: Handler = (message, ctx) =>
 *   tracer.startActiveSpan(`handle ${message.topic}`, {}, traceContextOf(message), async (span) => {
 *     try { await bill(message, ctx); } finally { span.end(); }
 *   });
 */
export function traceContextOf(message: { headers: Record<string, string> }, base: Context = otelContext.active()): Context {
  const headers = message.headers ?? {};
  const extracted = propagation.extract(base, headers, getter);
  if (trace.getSpanContext(extracted)) return extracted;
  const match = TRACEPARENT.exec(headers[HEADERS.traceparent] ?? '');
  if (!match) return base;
  const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: parseInt(match[3]!, 16), isRemote: true };
  return trace.isSpanContextValid(spanContext) ? trace.setSpanContext(base, spanContext) : base;
}

/**
 * Runs `fn` with the message's trace context active, so spans started inside (by
 * your code or instrumented libraries) join the producer's trace.
 * @example
 * const handler: Handler = (message, ctx) => inTraceContextOf(message, () => bill(message, ctx));
 */
export function inTraceContextOf<T>(message: { headers: Record<string, string> }, fn: () => T): T {
  return otelContext.with(traceContextOf(message), fn);
}
