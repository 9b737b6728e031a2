/** One progress line on stderr; stdout carries only the report. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

/** The message of a thrown value, for a report row or a progress line. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
