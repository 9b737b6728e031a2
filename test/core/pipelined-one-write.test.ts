import { describe, expect, it } from 'vitest';
import { pipelined } from '../../packages/core/src/shared/pipelined.js';
import { useDatabase } from '../support/test-pool.js';

const { pool } = await useDatabase();
const p = pool(2);

/** Counts the socket writes of a checked-out client: each write or writev is one send. */
function countWrites(client: object): { sends: () => number; chunks: () => number } {
  const stream = (client as { connection: { stream: { _write: (...a: unknown[]) => void; _writev: (chunks: unknown[], cb: unknown) => void } } }).connection.stream;
  let sends = 0;
  let chunks = 0;
  const write = stream._write.bind(stream);
  const writev = stream._writev.bind(stream);
  stream._write = (...a: unknown[]) => {
    sends++;
    chunks++;
    write(...a);
  };
  stream._writev = (c: unknown[], cb: unknown) => {
    sends++;
    chunks += c.length;
    writev(c, cb);
  };
  return { sends: () => sends, chunks: () => chunks };
}

describe('pipelined', () => {
  it('sends its statements in one write and answers each, and the client leaves pipeline mode', async () => {
    const client = await p.connect();
    try {
      const writes = countWrites(client);
      const results = await pipelined(client, ['BEGIN', { text: 'SELECT $1::int + 1 AS n', values: [41] }, { name: 'pipelined-test', text: 'SELECT 2 AS n', values: [] }, 'COMMIT']);
      expect(results.map((r) => r.rows[0]?.n ?? r.command)).toEqual(['BEGIN', 42, 2, 'COMMIT']);
      // BEGIN and COMMIT are one message each, the others several (parse, bind, ...): all in one send.
      expect(writes.sends()).toBe(1);
      expect(writes.chunks()).toBeGreaterThan(4);
      expect((client as unknown as { pipeline: boolean }).pipeline).toBe(false);
      const after = writes.sends();
      await client.query('SELECT 1');
      expect(writes.sends()).toBe(after + 1);
    } finally {
      client.release();
    }
  });
});
