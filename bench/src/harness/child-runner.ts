import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ChildJob, ChildReport } from './child-protocol.js';

const CHILD = fileURLToPath(new URL('./consumer-child.js', import.meta.url));

/**
 * Runs one consumer job in a fresh child process on this process's Node binary
 * (the Node 24 one when started through run.sh) and returns its report.
 */
export function runInChild(job: ChildJob, hardTimeoutMs: number): Promise<ChildReport> {
  return runScriptInChild<ChildReport>(CHILD, job, hardTimeoutMs);
}

/** Runs `script` in a child process with `job` as its one JSON argument; resolves to the report it sends. */
export function runScriptInChild<R extends { kind: string }>(script: string, job: unknown, hardTimeoutMs: number): Promise<R | { kind: 'error'; message: string }> {
  return new Promise((resolve) => {
    const child = fork(script, [JSON.stringify(job)], { execPath: process.execPath, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let report: R | { kind: 'error'; message: string } | undefined;
    const timer = setTimeout(() => {
      report ??= { kind: 'error', message: `child did not finish within ${hardTimeoutMs} ms` };
      child.kill('SIGKILL');
    }, hardTimeoutMs);
    child.on('message', (message) => {
      report = message as R;
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(report ?? { kind: 'error', message: `child exited (code ${String(code)}, signal ${String(signal)}) without a report` });
    });
  });
}
