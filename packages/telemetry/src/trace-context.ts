import { context as otelContext, type Context } from '@opentelemetry/api';
import { HEADERS } from '@sagabox/core';
import { injectTraceContext, traceContextOfHeaders } from '@sagabox/core/extension';

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
  if (out[HEADERS.traceparent] === undefined) injectTraceContext(out, context);
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
  return traceContextOfHeaders(message.headers ?? {}, base);
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
