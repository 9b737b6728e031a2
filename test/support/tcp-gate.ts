import net from 'node:net';

/**
 * A TCP forwarder in front of a PostgreSQL server that a test opens and closes: while
 * closed nothing listens on its port, so a connection is refused (ECONNREFUSED), as it
 * is while the server is down or restarting; once open, connections go through.
 */
export interface TcpGate {
  /** The port clients connect to. */
  readonly port: number;
  open(): Promise<void>;
  /** Stops listening and cuts every connection made through the gate. */
  close(): Promise<void>;
}

export async function createTcpGate(target: { host: string; port: number }): Promise<TcpGate> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  // Reserve a free port, then release it: the gate starts closed.
  const port = await new Promise<number>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port: p } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(p));
    });
  });
  return {
    port,
    open: () => new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    }),
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      if (!server.listening) resolve();
      else server.close(() => resolve());
    }),
  };
}
