import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';

/** A private nats-server with JetStream for one test file, on a free port, that the test can stop and start. */
export interface PrivateNatsServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (SIGKILL: an outage, not a shutdown); its JetStream store stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port and store. */
  start(): Promise<void>;
}

const NATS_SERVER = process.env.SAGABOX_NATS_SERVER ?? '/usr/sbin/nats-server';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

const accepts = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tcpConnect(port, '127.0.0.1');
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });

/**
 * Starts `nats-server -js -sd <tmp> -p <free port>` (it starts in milliseconds); it is
 * killed and its store removed after the file. `maxPayload` sets the server's
 * max_payload, in bytes.
 */
export async function startNatsServer(options: { maxPayload?: number } = {}): Promise<PrivateNatsServer> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sagabox-nats-'));
  let proc: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    if (proc) return;
    const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir];
    if (options.maxPayload !== undefined) {
      const conf = join(dir, 'server.conf');
      writeFileSync(conf, `max_payload: ${options.maxPayload}\n`);
      args.push('-c', conf);
    }
    const p = spawn(NATS_SERVER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    p.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    proc = p;
    const deadline = Date.now() + 15_000;
    while (!(await accepts(port))) {
      if (p.exitCode !== null) throw new Error(`nats-server exited (${p.exitCode}): ${log}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not listen on ${port} within 15 s: ${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    // JetStream answers a moment after the port opens.
    while (!/Server is ready/.test(log)) {
      if (Date.now() > deadline) throw new Error(`nats-server on ${port} not ready within 15 s: ${log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const stop = async (): Promise<void> => {
    const p = proc;
    if (!p) return;
    proc = undefined;
    log = '';
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise<void>((r) => p.once('exit', () => r()));
      p.kill('SIGKILL');
      await exited;
    }
  };
  afterAll(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  await start();
  return { url: `nats://127.0.0.1:${port}`, port, stop, start };
}

/** A private JetStream server and the test file's own connection to it. */
export interface JetStreamFixture {
  readonly server: PrivateNatsServer;
  /** The test's connection, closed after the file. */
  readonly nc: NatsConnection;
  /** Streams and consumers: set up and inspect them. */
  readonly jsm: JetStreamManager;
  /** Publishes to streams directly, around sagabox. */
  readonly js: JetStreamClient;
}

/**
 * Starts a private nats-server ({@link startNatsServer}) and connects the test file to it
 * (closed after the file, before the server is killed). `connect` adds to the connection's
 * options (reconnect settings for a test that stops the server).
 */
export async function useJetStream(options: { maxPayload?: number; connect?: Omit<NodeConnectionOptions, 'servers'> } = {}): Promise<JetStreamFixture> {
  const server = await startNatsServer(options.maxPayload !== undefined ? { maxPayload: options.maxPayload } : {});
  const nc = await connect({ servers: server.url, ...options.connect });
  const jsm = await jetstreamManager(nc);
  afterAll(async () => {
    await nc.close();
  });
  return { server, nc, jsm, js: jetstream(nc) };
}
