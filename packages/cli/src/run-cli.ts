import { CommanderError } from 'commander';
import { isSagaboxError } from '@sagabox/core';
import { createProgram } from './create-program.js';
import { CliExit, EXIT_FAILURE, EXIT_NOTHING_DONE, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { UsageError } from './usage-error.js';

export { EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_NOTHING_DONE, EXIT_DECLINED, EXIT_CHECK_FAILED } from './exit-codes.js';

/** The exit code an error thrown by a command ends the CLI with (see `exit-codes.ts`). */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CliExit) return err.exitCode;
  if (
    err instanceof UsageError ||
    isSagaboxError(err, 'INVALID_OPTIONS') ||
    isSagaboxError(err, 'INVALID_SCHEMA_NAME') ||
    isSagaboxError(err, 'INVALID_QUEUE_NAME') ||
    isSagaboxError(err, 'INVALID_TOPIC')
  ) {
    return EXIT_USAGE;
  }
  // The thing asked about is not there, or not in a state the action applies to.
  if (isSagaboxError(err, 'NOT_FOUND') || isSagaboxError(err, 'SAGA_CONFLICT') || isSagaboxError(err, 'HALF_MESSAGE_ALREADY_DECIDED')) {
    return EXIT_NOTHING_DONE;
  }
  return EXIT_FAILURE;
}

/**
 * Runs the CLI on `argv` (as in `process.argv`) and returns the exit code. Failures
 * become one line on stderr, `sagabox: <message>`, never a stack trace.
 */
export async function runCli(argv: readonly string[]): Promise<number> {
  const program = createProgram();
  try {
    await program.parseAsync([...argv]);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message (or the help / version).
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`sagabox: ${message.split('\n')[0]}\n`);
    return exitCodeOf(err);
  }
}
