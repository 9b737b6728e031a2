/** What the live progress line shows. */
export interface Progress {
  placed: number;
  total: number;
  byStatus: Record<string, number>;
  elapsedMs: number;
  kills: number;
}

/** One line of progress: placed, finished by outcome, rate, chaos kills. */
export function formatProgress(p: Progress): string {
  const finished = (p.byStatus.completed ?? 0) + (p.byStatus.compensated ?? 0) + (p.byStatus.failed ?? 0);
  const inFlight = (p.byStatus.running ?? 0) + (p.byStatus.compensating ?? 0);
  const rate = finished / Math.max(p.elapsedMs / 1000, 0.001);
  return (
    `placed ${p.placed}/${p.total} · in flight ${inFlight} · completed ${p.byStatus.completed ?? 0}` +
    ` · compensated ${p.byStatus.compensated ?? 0} · failed ${p.byStatus.failed ?? 0}` +
    ` · ${rate.toFixed(1)} orders/s · ${(p.elapsedMs / 1000).toFixed(1)} s` +
    (p.kills > 0 ? ` · ${p.kills} SIGKILLs` : '')
  );
}

/**
 * Writes progress to stderr: rewritten in place on a terminal, otherwise one line every
 * `plainIntervalMs` (so that logs and CI output stay readable).
 */
export function createProgressLine(stream: NodeJS.WriteStream = process.stderr, plainIntervalMs = 2_000) {
  const tty = stream.isTTY === true;
  let lastPlain = 0;
  let shown = false;
  return {
    update(line: string): void {
      if (tty) {
        stream.write(`\r\x1b[K${line}`);
        shown = true;
      } else if (Date.now() - lastPlain >= plainIntervalMs) {
        lastPlain = Date.now();
        stream.write(`${line}\n`);
      }
    },
    /** Leaves the last line on screen and moves to a fresh one. */
    done(line: string): void {
      if (tty) stream.write(`\r\x1b[K${line}\n`);
      else stream.write(`${line}\n`);
      shown = false;
    },
    get shown() {
      return shown;
    },
  };
}
