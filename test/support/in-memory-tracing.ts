import { afterAll } from 'vitest';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';

/** A real OpenTelemetry SDK installed globally, recording every finished span in memory. */
export interface InMemoryTracing {
  /** Every span finished since it was installed. */
  readonly exporter: InMemorySpanExporter;
  /** The finished spans of one trace. */
  spansOf(traceId: string): ReadableSpan[];
  /** Shuts the provider down and removes the global tracer provider and context manager. */
  uninstall(): Promise<void>;
}

/**
 * Installs the OpenTelemetry SDK now, as an application would: an async-hooks context
 * manager and a tracer provider exporting to memory. For a test that installs it part-way
 * through; a whole file uses {@link useInMemoryTracing}.
 */
export function installInMemoryTracing(): InMemoryTracing {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  trace.setGlobalTracerProvider(provider);
  return {
    exporter,
    spansOf: (traceId) => exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId),
    uninstall: async () => {
      await provider.shutdown();
      trace.disable();
      context.disable();
    },
  };
}

/** {@link installInMemoryTracing} for the whole test file, uninstalled after it. */
export function useInMemoryTracing(): InMemoryTracing {
  const tracing = installInMemoryTracing();
  afterAll(() => tracing.uninstall());
  return tracing;
}
