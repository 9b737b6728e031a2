import { context as otelContext, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { HEADERS } from '@sagabox/core';
import { endSpanWithError, injectTraceContext, MESSAGING_ATTRIBUTES, traceContextOfHeaders, tracingIsOff } from '@sagabox/core/extension';
import type { SagaTransition } from './saga-transition.js';

let cachedTracer: Tracer | undefined;
const sagaTracer = (): Tracer => (cachedTracer ??= trace.getTracer('@sagabox/saga'));

/**
 * Runs one saga transition (`fn`) in a span named `saga <type> <what>`, the child of
 * the active span (the orchestrator's `process` span of the reply, or the caller of
 * `startSaga`; without one, the context `headers` carry). Commands and compensations the transition publishes are its children,
 * so they carry the saga's trace to the participants, whose replies bring it back.
 * The span records the transition's history events and ends with the saga's status
 * (ERROR when the saga failed or the transition threw).
 */
export async function inSagaSpan<T>(what: string, t: SagaTransition, fn: () => Promise<T>, headers?: Record<string, string>): Promise<T> {
  // No SDK: the span would not record and no context would become active, so making
  // them (a span, a context, a traceparent parse) is work every transition paid for nothing.
  if (tracingIsOff()) return fn();
  const active = otelContext.active();
  // A reply handled outside an instrumented worker (a broker consumer) still continues its trace.
  const parent = trace.getSpan(active) === undefined && headers !== undefined ? traceContextOfHeaders(headers, active) : active;
  const span = sagaTracer().startSpan(`saga ${t.definition.name} ${what}`, { kind: SpanKind.INTERNAL }, parent);
  const recording = span.isRecording();
  const before = { status: t.status, step: t.stepName(t.currentStep) };
  if (recording) {
    span.setAttributes({
      'sagabox.saga.id': t.id,
      'sagabox.saga.type': t.definition.name,
      'sagabox.saga.version': t.definition.version,
      'sagabox.saga.status.before': before.status,
      'sagabox.saga.step.before': before.step,
      [MESSAGING_ATTRIBUTES.conversationId]: t.id,
    });
  }
  let result: T;
  try {
    result = await otelContext.with(trace.setSpan(parent, span), fn);
  } catch (err) {
    endSpanWithError(span, err);
    throw err;
  }
  if (recording) {
    for (const e of t.events) span.addEvent(e.event, { 'sagabox.saga.step': e.step });
    span.setAttributes({ 'sagabox.saga.status': t.status, 'sagabox.saga.step': t.stepName(t.currentStep), 'sagabox.saga.messages_sent': t.messages.length });
    if (t.status === 'failed') span.setStatus({ code: SpanStatusCode.ERROR, message: t.error ?? 'saga failed' });
  }
  span.end();
  return result;
}

/**
 * Adds the trace context of a participant's reply to `headers`: the active span (the
 * worker's `process` span of the command), or, when the command is handled with no
 * span active (a broker consumer, no SDK), the command's own `traceparent`, so the
 * saga's trace goes on either way.
 */
export function addReplyTraceContext(headers: Record<string, string>, command: { headers: Record<string, string> }): void {
  if (injectTraceContext(headers, otelContext.active())) return;
  for (const name of [HEADERS.traceparent, 'tracestate']) {
    const value = command.headers[name];
    if (value !== undefined) headers[name] = value;
  }
}
