import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';

/** How long {@link containerRuntimeAnswers} waits for a Docker-compatible engine to answer, in milliseconds. */
export const DEFAULT_CONTAINER_PING_TIMEOUT_MS = 1_000;

/**
 * True when a Docker-compatible engine answers `GET /_ping` on `DOCKER_HOST` or on one
 * of the usual sockets. It never loads Testcontainers and gives up after
 * `timeoutMs` (default {@link DEFAULT_CONTAINER_PING_TIMEOUT_MS}), so a machine without
 * Docker costs a few `stat` calls and no noise.
 *
 * @param env - where `DOCKER_HOST` and `XDG_RUNTIME_DIR` are read; default `process.env`.
 */
export async function containerRuntimeAnswers(
  env: Record<string, string | undefined> = process.env,
  timeoutMs = DEFAULT_CONTAINER_PING_TIMEOUT_MS,
): Promise<boolean> {
  return (await findContainerRuntime(env, timeoutMs)) !== undefined;
}

/**
 * The engine {@link containerRuntimeAnswers} finds, as a `DOCKER_HOST` value
 * (`unix:///run/podman/podman.sock`, `tcp://host:2375`), or undefined when none
 * answers. Testcontainers looks at fewer sockets than this (not rootful Podman's), so
 * the harness hands it this value when `DOCKER_HOST` is unset.
 */
export async function findContainerRuntime(
  env: Record<string, string | undefined> = process.env,
  timeoutMs = DEFAULT_CONTAINER_PING_TIMEOUT_MS,
): Promise<string | undefined> {
  const dockerHost = env.DOCKER_HOST;
  if (dockerHost !== undefined && dockerHost !== '') {
    if (dockerHost.startsWith('unix://')) {
      return (await ping({ socketPath: dockerHost.slice('unix://'.length) }, timeoutMs)) ? dockerHost : undefined;
    }
    if (dockerHost.startsWith('tcp://') || dockerHost.startsWith('http://')) {
      const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
      return (await ping({ host: url.hostname, port: Number(url.port || 2375) }, timeoutMs)) ? dockerHost : undefined;
    }
    return undefined; // ssh:// and friends: let the user pick a backend explicitly
  }
  const sockets = [
    '/var/run/docker.sock',
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'docker.sock') : undefined,
    env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, 'podman', 'podman.sock') : undefined,
    join(homedir(), '.docker', 'run', 'docker.sock'),
    '/run/podman/podman.sock',
  ].filter((s): s is string => s !== undefined && existsSync(s));
  for (const socketPath of sockets) {
    if (await ping({ socketPath }, timeoutMs)) return `unix://${socketPath}`;
  }
  return undefined;
}

function ping(target: { socketPath: string } | { host: string; port: number }, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
}
