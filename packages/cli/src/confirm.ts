import { createInterface } from 'node:readline/promises';
import { UsageError } from './usage-error.js';

/**
 * Asks before a destructive action. `--yes` skips the question; without a terminal to
 * ask on, the action is refused rather than taken silently.
 */
export async function confirm(question: string, yes: boolean | undefined): Promise<boolean> {
  if (yes) return true;
  if (!process.stdin.isTTY) throw new UsageError(`${question} -- refusing without --yes (no terminal to ask on)`);
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}
