/**
 * Exit codes of the `sagabox` binary. Scripts can tell "it failed" from "it did nothing"
 * from "you declined": each is its own number, and every one but {@link EXIT_OK} comes
 * with one line on stderr.
 */
/** Done: the command did what was asked. */
export const EXIT_OK = 0;
/** A command failed (database unreachable, schema never migrated, migration failed, ...). */
export const EXIT_FAILURE = 1;
/** The command was called wrongly (unknown flag, missing URL, invalid schema, queue, topic, reason or duration). */
export const EXIT_USAGE = 2;
/** Nothing matched, so nothing was done: an unknown id or queue, no message matching a filter, a saga not in the status an action needs. */
export const EXIT_NOTHING_DONE = 3;
/** The operator answered no at the confirmation prompt. */
export const EXIT_DECLINED = 4;
/** A check did not pass: `migrate status` with pending or changed migrations, `attention` with something listed. */
export const EXIT_CHECK_FAILED = 5;

/** The exit codes with one line each, as printed at the end of `sagabox --help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0  done
  1  failed (database unreachable, schema never migrated, ...)
  2  called wrongly (unknown flag, bad value)
  3  nothing matched, nothing done (unknown id, empty filter)
  4  declined at the confirmation prompt
  5  check failed (migrate status: pending or changed migrations;
     attention: something needs an operator)`;

/**
 * Ends a command with a given exit code and a one-line explanation on stderr, after
 * whatever it already printed on stdout (its `--json` result included).
 */
export class CliExit extends Error {
  /** The process exit code the command asks for (see docs/cli.md). */
  readonly exitCode: number;
  constructor(exitCode: number, message: string) {
    super(message);
    this.name = 'CliExit';
    this.exitCode = exitCode;
  }
}

/** A command that matched nothing: exit code {@link EXIT_NOTHING_DONE}. */
export function nothingDone(message: string): CliExit {
  return new CliExit(EXIT_NOTHING_DONE, message);
}
