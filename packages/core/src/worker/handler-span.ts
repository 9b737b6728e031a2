import { ROOT_CONTEXT, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { HEADERS } from '../publish/envelope.js';
import {
  coreTracer,
  endSpanWithError,
  MESSAGING_ATTRIBUTES as A,
  MESSAGING_SYSTEM,
  setAttributesIfRecording,
  traceContextOfHeaders,
  tracingIsOff,
  withSpan,
} from '../shared/tracing.js';
import { isHandlerOutcome } from './handler-outcome.js';
import type { HandlerCallOutcome } from './worker-options.js';

const START_ATTRIBUTES = { [A.system]: MESSAGING_SYSTEM, [A.operationType]: 'process', [A.operationName]: 'process' };

/** How a handler call ended: it returned a value, threw, or outlived its timeout. */
export type HandlerCallResult = { kind: 'returned'; value: unknown } | { kind: 'threw'; error: unknown } | { kind: 'timeout' };

const RETURNED_NOTHING: HandlerCallResult = { kind: 'returned', value: undefined };
const TIMED_OUT: HandlerCallResult = { kind: 'timeout' };

/** Whether a handler's result is a promise (or any thenable) to wait for, rather than its value. */
export const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  ((typeof value === 'object' && value !== null) || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';

/**
 * Calls a handler once under a timeout: one promise, settled by the handler's result or
 * by the expiry `watch` arms, whichever comes first (a handler that throws at once or
 * returns a plain value settles it at once). Never rejects. `watch` receives the
 * function to call when the call's time is up; disarming it afterwards is the caller's.
 *
 * @example
 * const result = await callHandler(() => handler(message, context), (expire) => (timer = setTimeout(expire, 30_000)));
 */
export function callHandler(run: () => unknown, watch: (expire: () => void) => void): Promise<HandlerCallResult> {
  return new Promise((resolve) => {
    watch(() => resolve(TIMED_OUT));
    let running: unknown;
    try {
      running = run();
    } catch (error) {
      resolve({ kind: 'threw', error });
      return;
    }
    const returned = (value: unknown): void => resolve(value === undefined ? RETURNED_NOTHING : { kind: 'returned', value });
    if (!isThenable(running)) returned(running);
    else running.then(returned, (error: unknown) => resolve({ kind: 'threw', error }));
  });
}

/** The CONSUMER span of one handler call. */
export interface HandlerSpan {
  /** Runs the handler with the span active, so its own spans and publishes are children. */
  run<T>(fn: () => T): T;
  /** Ends the span with the call's result (status ERROR unless it acked); returns the outcome. */
  end(result: HandlerCallResult, timeoutError: unknown): HandlerCallOutcome;
}

/** The outcome of a call, without a span. */
function outcomeOf(result: HandlerCallResult): HandlerCallOutcome {
  if (result.kind === 'timeout') return 'timeout';
  if (result.kind === 'threw') return 'error';
  return isHandlerOutcome(result.value) ? result.value.kind : 'ok';
}

const NO_SPAN: HandlerSpan = { run: (fn) => fn(), end: outcomeOf };

/**
 * Starts the span of a handler call: the child of the span that published the message
 * (its `traceparent` header), or the root of a new trace when it has none. A retry
 * or a dead-letter outcome ends it with status ERROR and the reason, without an
 * exception event; a throw or a timeout records the exception.
 */
export function startHandlerSpan(
  message: { id: string; topic: string; headers: Record<string, string> | null; attempts: number },
  queue: string,
  consumer: string,
): HandlerSpan {
  if (tracingIsOff()) return NO_SPAN;
  const parent = traceContextOfHeaders(message.headers ?? undefined, ROOT_CONTEXT);
  const span = coreTracer().startSpan(`process ${message.topic}`, { kind: SpanKind.CONSUMER, attributes: START_ATTRIBUTES }, parent);
  setAttributesIfRecording(span, () => {
    const correlation = message.headers?.[HEADERS.correlationId];
    return {
      [A.destinationName]: message.topic,
      [A.subscriptionName]: queue,
      [A.consumerGroupName]: consumer,
      [A.messageId]: message.id,
      'sagabox.message.attempt': message.attempts,
      ...(correlation !== undefined ? { [A.conversationId]: correlation } : {}),
    };
  });
  return {
    run: (fn) => withSpan(parent, span, fn),
    end(result, timeoutError) {
      if (result.kind === 'timeout') {
        endSpanWithError(span, timeoutError, 'timeout');
        return 'timeout';
      }
      if (result.kind === 'threw') {
        endSpanWithError(span, result.error);
        return 'error';
      }
      if (isHandlerOutcome(result.value)) {
        const outcome = result.value;
        if (span.isRecording()) {
          span.setAttribute(A.errorType, outcome.kind);
          span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.reason ?? outcome.kind });
        }
        span.end();
        return outcome.kind;
      }
      span.end();
      return 'ok';
    },
  };
}
