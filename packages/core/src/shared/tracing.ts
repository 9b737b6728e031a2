import {
  context as otelContext,
  createContextKey,
  propagation,
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';

// Spans through @opentelemetry/api only: with no SDK registered every call below is a
// no-op on a shared non-recording span, so instrumented code pays almost nothing, and
// an application that registers an SDK gets the spans without wrapping anything.

/** `messaging.system` of every sagabox span. */
export const MESSAGING_SYSTEM = 'sagabox';

/** OpenTelemetry messaging semantic-convention attribute names sagabox sets. */
export const MESSAGING_ATTRIBUTES = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destinationName: 'messaging.destination.name',
  subscriptionName: 'messaging.destination.subscription.name',
  consumerGroupName: 'messaging.consumer.group.name',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  batchMessageCount: 'messaging.batch.message_count',
  errorType: 'error.type',
} as const;

const TRACEPARENT_HEADER = 'traceparent';
const TRACESTATE_HEADER = 'tracestate';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let cachedTracer: Tracer | undefined;

/** The tracer of `@sagabox/core`, made on first use (a proxy: an SDK registered later is picked up). */
export function coreTracer(): Tracer {
  return (cachedTracer ??= trace.getTracer('@sagabox/core'));
}

let noopProvider: TracerProvider | undefined;
let probe: Context | undefined;

/**
 * True while no SDK is registered: no tracer provider (so no span records) and no
 * context manager (so no span is ever active, and nothing is there to carry). The
 * instrumented paths then skip span and context work entirely. Checked on every call:
 * an SDK started later is picked up at once.
 */
export function tracingIsOff(): boolean {
  const provider = trace.getTracerProvider();
  noopProvider ??= new ProxyTracerProvider().getDelegate();
  // A provider from another copy of the API is not ours to judge: count it as on.
  if (!(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== noopProvider) return false;
  probe ??= ROOT_CONTEXT.setValue(createContextKey('sagabox tracing probe'), true);
  return otelContext.with(probe, () => otelContext.active() !== probe);
}

const setter: TextMapSetter<Record<string, string>> = {
  set: (carrier, key, value) => {
    carrier[key] = value;
  },
};

const getter: TextMapGetter<Record<string, string>> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key] ?? carrier[key.toLowerCase()],
};

/**
 * The context a message's headers carry (its producer's span as a remote parent) on
 * top of `base`, or `base` when they carry none or a malformed one. Uses the registered
 * propagator, then a plain W3C `traceparent`, so the trace goes on without an SDK too.
 */
export function traceContextOfHeaders(headers: Record<string, string> | undefined, base: Context = ROOT_CONTEXT): Context {
  if (!headers) return base;
  const extracted = propagation.extract(base, headers, getter);
  if (trace.getSpanContext(extracted) !== trace.getSpanContext(base)) return extracted;
  const match = TRACEPARENT.exec(headers[TRACEPARENT_HEADER] ?? '');
  if (!match) return base;
  const spanContext = { traceId: match[1]!, spanId: match[2]!, traceFlags: parseInt(match[3]!, 16), isRemote: true };
  return trace.isSpanContextValid(spanContext) ? trace.setSpanContext(base, spanContext) : base;
}

/**
 * Writes the trace context of `context` into `headers` (`traceparent`, `tracestate`),
 * through the registered propagator or, without one, as a plain W3C `traceparent`.
 * Returns whether it wrote anything (nothing when the context holds no valid span).
 */
export function injectTraceContext(headers: Record<string, string>, context: Context): boolean {
  const span = trace.getSpanContext(context);
  if (!span || !trace.isSpanContextValid(span)) return false;
  propagation.inject(context, headers, setter);
  if (headers[TRACEPARENT_HEADER] === undefined || !headers[TRACEPARENT_HEADER]!.includes(span.spanId)) {
    headers[TRACEPARENT_HEADER] = `00-${span.traceId}-${span.spanId}-${(span.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
    const state = span.traceState?.serialize();
    if (state) headers[TRACESTATE_HEADER] = state;
  }
  return true;
}

/** The `traceparent` of a header object stored as JSON text, without parsing the rest. */
export function traceparentInJson(headersJson: string): Record<string, string> | undefined {
  const at = headersJson.indexOf('"traceparent"');
  if (at < 0) return undefined;
  const match = /^"traceparent"\s*:\s*"([^"]*)"/.exec(headersJson.slice(at, at + 90));
  return match ? { [TRACEPARENT_HEADER]: match[1]! } : undefined;
}

/** Sets `attributes` on `span` when it records (building them is skipped for a no-op span). */
export function setAttributesIfRecording(span: Span, attributes: () => Attributes): void {
  if (span.isRecording()) span.setAttributes(attributes());
}

/**
 * Ends `span` as failed: an `exception` event for an error value, status ERROR with
 * `description`, and `error.type` (the error's code or class name, else `errorType`).
 */
export function endSpanWithError(span: Span, error: unknown, errorType = '_OTHER', description?: string): void {
  if (span.isRecording()) {
    if (error instanceof Error) span.recordException(error);
    const code = (error as { code?: unknown } | null)?.code;
    span.setAttribute(MESSAGING_ATTRIBUTES.errorType, typeof code === 'string' ? code : error instanceof Error ? error.name : errorType);
    span.setStatus({ code: SpanStatusCode.ERROR, message: description ?? (error instanceof Error ? error.message : String(error)) });
  }
  span.end();
}

/** Runs `fn` with `span` active on top of `parent`. */
export function withSpan<T>(parent: Context, span: Span, fn: () => T): T {
  return otelContext.with(trace.setSpan(parent, span), fn);
}
