import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '@sagabox/core';
import { SERVICE_NAMES, type ServiceConfig, type ServiceName } from '../services/service-config.js';

const SERVICE_MAIN = fileURLToPath(new URL('../service-main.js', import.meta.url));
/** Longest wait for a service process to report ready, in milliseconds. */
export const SERVICE_START_TIMEOUT_MS = 30_000;

/** Options of {@link createServiceProcesses}. */
export interface ServiceProcessesOptions {
  config: ServiceConfig;
  /** Folder of the services' log files (`<service>.log`). */
  logDir: string;
  logger: Logger;
}

/** The four service processes: started, killed and restarted by name. */
export interface ServiceProcesses {
  startAll(): Promise<void>;
  /** Kills a service with SIGKILL (no chance to clean up), then starts it again after `downMs`. */
  killAndRestart(name: ServiceName, downMs: number): Promise<void>;
  /** Times each service was killed, and unexpected exits (restarted too). */
  stats(): { kills: Record<ServiceName, number>; crashes: number };
  /** SIGTERM to every process; SIGKILL after `timeoutMs`. */
  stopAll(timeoutMs?: number): Promise<void>;
}

/**
 * Runs each service as a child process (`service-main.js <name>`), so that chaos can
 * kill one with SIGKILL — mid-transaction, mid-HTTP-call — and start it again, the way
 * a crashed container comes back. A process that exits on its own is restarted too.
 */
export function createServiceProcesses(options: ServiceProcessesOptions): ServiceProcesses {
  const log = options.logger.child({ component: 'supervisor' });
  const children = new Map<ServiceName, ChildProcess>();
  const kills = Object.fromEntries(SERVICE_NAMES.map((n) => [n, 0])) as Record<ServiceName, number>;
  let crashes = 0;
  let stopping = false;

  const start = (name: ServiceName): Promise<void> =>
    new Promise((resolve, reject) => {
      const child = fork(SERVICE_MAIN, [name], {
        env: {
          ...process.env,
          SAGABOX_DEMO_CONFIG: JSON.stringify(options.config),
          SAGABOX_DEMO_LOG_FILE: join(options.logDir, `${name}.log`),
        },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.set(name, child);
      const timer = setTimeout(() => reject(new Error(`${name} did not start within ${SERVICE_START_TIMEOUT_MS} ms`)), SERVICE_START_TIMEOUT_MS);
      child.once('message', (m: { type?: string }) => {
        if (m?.type !== 'ready') return;
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (children.get(name) !== child) return; // replaced by a restart
        children.delete(name);
        if (stopping || signal === 'SIGKILL') return;
        crashes++;
        log.warn({ service: name, code, signal }, 'service exited on its own; restarting it');
        setTimeout(() => void start(name).catch((err) => log.error({ err, service: name }, 'restart failed')), 500);
        reject(new Error(`${name} exited (${code ?? signal}) before it was ready`));
      });
    });

  const waitExit = (child: ChildProcess): Promise<void> =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));

  return {
    async startAll() {
      await Promise.all(SERVICE_NAMES.map((name) => start(name)));
    },
    async killAndRestart(name, downMs) {
      const child = children.get(name);
      if (child) {
        kills[name]++;
        log.info({ service: name, pid: child.pid }, 'chaos: SIGKILL');
        child.kill('SIGKILL');
        await waitExit(child);
      }
      await new Promise((r) => setTimeout(r, downMs));
      if (!stopping) await start(name);
    },
    stats: () => ({ kills: { ...kills }, crashes }),
    async stopAll(timeoutMs = 10_000) {
      stopping = true;
      await Promise.all(
        [...children.values()].map(async (child) => {
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
          await waitExit(child);
          clearTimeout(timer);
        }),
      );
      children.clear();
    },
  };
}
