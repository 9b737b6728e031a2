import type { Logger } from '@sagabox/core';

/** A logger that keeps what it is given, to check that decisions are logged with their fields. */
export function captureLogger(): Logger & { lines: { level: string; obj: Record<string, unknown>; msg?: string }[] } {
  const lines: { level: string; obj: Record<string, unknown>; msg?: string }[] = [];
  const make = (bindings: Record<string, unknown>): Logger => ({
    child: (more) => make({ ...bindings, ...more }),
    debug: (obj, msg) => lines.push({ level: 'debug', obj: { ...bindings, ...obj }, msg }),
    info: (obj, msg) => lines.push({ level: 'info', obj: { ...bindings, ...obj }, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj: { ...bindings, ...obj }, msg }),
    error: (obj, msg) => lines.push({ level: 'error', obj: { ...bindings, ...obj }, msg }),
  });
  return Object.assign(make({}), { lines });
}
