import { CommanderError } from 'commander';
import { isSagaboxError } from '@sagabox/core';
import { createProgram } from './create-program.js';
import { UsageError } from './usage-error.js';

/** Exit codes of the `sagabox` binary. */
export const EXIT_OK = 0;
/** A command failed (database unreachable, migration failed, ...). */
export const EXIT_FAILURE = 1;
/** The command was called wrongly (unknown flag, missing URL, invalid schema, queue or topic name). */
export const EXIT_USAGE = 2;

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
    if (
      err instanceof UsageError ||
      isSagaboxError(err, 'INVALID_OPTIONS') ||
      isSagaboxError(err, 'INVALID_SCHEMA_NAME') ||
      isSagaboxError(err, 'INVALID_QUEUE_NAME') ||
      isSagaboxError(err, 'INVALID_TOPIC')
    ) {
      return EXIT_USAGE;
    }
    return EXIT_FAILURE;
  }
}
