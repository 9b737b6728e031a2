import type pg from 'pg';

/** A statement for {@link pipelined}: its text alone, or a query config with values (and a name to prepare it). */
export type PipelinedStatement = string | pg.QueryConfig;

/**
 * Sends `statements` on `client` back to back and waits for every answer: one round trip
 * (and one wake-up of the server's backend) instead of one each, as with BEGIN and the
 * claim, or the removal of a delivered batch and its COMMIT. Uses node-postgres's
 * pipeline mode (each statement with its own Sync) on this checked-out client only, and
 * switches it off again before returning, so the pool gets the client back as it was.
 *
 * Resolves to the results in order, or rejects with the first statement's error once all
 * have answered. A statement after a failed one inside a transaction fails too
 * (`25P02`), and a COMMIT after one answers ROLLBACK without an error: the caller must
 * treat any rejection as "nothing was committed" and discard the transaction.
 */
export async function pipelined(client: pg.PoolClient, statements: readonly PipelinedStatement[]): Promise<pg.QueryResult[]> {
  // `pipeline` is read on every send and every ReadyForQuery; it is typed read-only
  // because a pool's clients take it from the pool's config, which the relay does not own.
  const mode = client as unknown as { pipeline: boolean };
  if (mode.pipeline) return sendAll(client, statements);
  mode.pipeline = true;
  try {
    return await sendAll(client, statements);
  } finally {
    mode.pipeline = false;
  }
}

/** The socket under a node-postgres client (not part of its typed API). */
interface Corkable {
  cork(): void;
  uncork(): void;
}

async function sendAll(client: pg.PoolClient, statements: readonly PipelinedStatement[]): Promise<pg.QueryResult[]> {
  // In pipeline mode each statement is written as it is queried, one write (and one
  // wake-up of the backend) each; corked, they leave in one writev. A client without
  // that socket (another driver) just sends them one by one.
  const stream = (client as unknown as { connection?: { stream?: Partial<Corkable> } }).connection?.stream;
  const socket = typeof stream?.cork === 'function' && typeof stream.uncork === 'function' ? (stream as Corkable) : undefined;
  socket?.cork();
  let sent: Promise<pg.QueryResult>[];
  try {
    sent = statements.map((s) => (typeof s === 'string' ? client.query(s) : client.query(s)));
  } finally {
    socket?.uncork();
  }
  const settled = await Promise.allSettled(sent);
  const results: pg.QueryResult[] = [];
  for (const s of settled) {
    if (s.status === 'rejected') throw s.reason;
    results.push(s.value);
  }
  return results;
}
