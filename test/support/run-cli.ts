import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Path of the built `sagabox` binary; `npm test` builds it first. */
export const CLI_PATH = fileURLToPath(new URL('../../packages/cli/dist/main.js', import.meta.url));

/** What one run of the CLI did. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node packages/cli/dist/main.js ...args` and resolves with its exit code and
 * output (never rejects on a non-zero exit). `env` replaces the environment; by
 * default the test's own, without DATABASE_URL.
 */
export function runCli(args: readonly string[], env?: NodeJS.ProcessEnv): Promise<CliRun> {
  const { DATABASE_URL: _ignored, ...inherited } = process.env;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [CLI_PATH, ...args],
      { env: env ?? inherited, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') return reject(error);
        resolve({ code: error ? (error.code as number) : 0, stdout, stderr });
      },
    );
  });
}

/** What one run of the CLI on a pseudo-terminal did: its exit code and what the terminal showed. */
export interface TerminalRun {
  code: number;
  output: string;
}

/**
 * Runs the CLI on a pseudo-terminal (util-linux `script`), so it asks its [y/N] questions,
 * and answers the first with `answer` once the question is on the terminal.
 */
export function runOnTerminal(args: readonly string[], answer: string): Promise<TerminalRun> {
  const command = [process.execPath, CLI_PATH, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return new Promise((resolve, reject) => {
    const child = execFile('script', ['-q', '-e', '-c', command, '/dev/null'], { timeout: 60_000 }, (error, stdout) => {
      if (error && typeof error.code !== 'number') return reject(error);
      resolve({ code: error ? (error.code as number) : 0, output: stdout });
    });
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('[y/N]')) child.stdin!.write(`${answer}\n`);
    });
  });
}
