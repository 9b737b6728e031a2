import { createInterface } from 'node:readline/promises';
import { CliExit, EXIT_DECLINED } from './exit-codes.js';
import { UsageError } from './usage-error.js';

/**
 * Asks before a destructive action and returns once it may go on. `--yes` skips the
 * question; without a terminal to ask on, the action is refused rather than taken
 * silently (exit code 2); an answer other than yes ends the command with exit code 4.
 */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw new UsageError(`${question} -- refusing without --yes (no terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  let answer: string;
  try {
    answer = await rl.question(`${question} [y/N] `);
  } finally {
    rl.close();
  }
  if (!/^y(es)?$/i.test(answer.trim())) throw new CliExit(EXIT_DECLINED, 'declined: nothing done');
}
