import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { commitHandling, recordInInbox, recordManyInInbox, ROLLED_BACK_AT_COMMIT } from '@sagabox/core';
import { beginWithInboxRecord } from '@sagabox/core/extension';
import { useDatabase } from '../support/test-pool.js';

const { pool, count } = await useDatabase();
const p = pool(4);
const inboxRows = (consumer: string) => count('SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1', [consumer]);

describe('recordManyInInbox', () => {
  it('returns the ids recorded now, leaving out those recorded before for the same consumer only', async () => {
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    expect(await recordManyInInbox(p, { consumer: 'billing', messageIds: [a, b] })).toEqual(new Set([a, b]));
    expect(await recordManyInInbox(p, { consumer: 'billing', messageIds: [b, c, a] })).toEqual(new Set([c]));
    expect(await recordManyInInbox(p, { consumer: 'shipping', messageIds: [a, c] })).toEqual(new Set([a, c]));
    expect(await recordManyInInbox(p, { consumer: 'billing', messageIds: [a, b, c] })).toEqual(new Set());
    expect(await inboxRows('billing')).toBe(3);
  });

  it('gives back an id in the form it was sent, so an upper-case id recorded before is still left out', async () => {
    const a = randomUUID();
    const b = randomUUID().toUpperCase();
    expect(await recordManyInInbox(p, { consumer: 'forms', messageIds: [a] })).toEqual(new Set([a]));
    expect(await recordManyInInbox(p, { consumer: 'forms', messageIds: [a.toUpperCase(), b] })).toEqual(new Set([b]));
    expect(await recordManyInInbox(p, { consumer: 'forms', messageIds: [b.toLowerCase()] })).toEqual(new Set());
  });
});

describe('beginWithInboxRecord', () => {
  it('records in the transaction it opens: a rollback leaves the ids unrecorded, a commit records them', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const client = await p.connect();
    try {
      expect(await beginWithInboxRecord(client, { consumer: 'tx', messageIds: [a, b] })).toEqual(new Set([a, b]));
      await client.query('ROLLBACK');
      expect(await inboxRows('tx')).toBe(0);
      expect(await beginWithInboxRecord(client, { consumer: 'tx', messageIds: [a] })).toEqual(new Set([a]));
      await client.query('COMMIT');
      expect(await beginWithInboxRecord(client, { consumer: 'tx', messageIds: [a, b] })).toEqual(new Set([b]));
      await client.query('COMMIT');
      expect(await inboxRows('tx')).toBe(2);
    } finally {
      client.release();
    }
  });
});

describe('commitHandling', () => {
  it('commits a handling transaction, and rejects when the server rolled it back at COMMIT because a caught statement had failed', async () => {
    const client = await p.connect();
    try {
      const ok = randomUUID();
      await client.query('BEGIN');
      expect(await recordInInbox(client, { consumer: 'commit', messageId: ok })).toBe(true);
      await commitHandling(client);
      const swallowed = randomUUID();
      await client.query('BEGIN');
      expect(await recordInInbox(client, { consumer: 'commit', messageId: swallowed })).toBe(true);
      await client.query('SELECT 1/0').catch(() => undefined);
      await expect(commitHandling(client)).rejects.toThrow(ROLLED_BACK_AT_COMMIT);
      // Nothing of it was written, and the connection is out of the transaction.
      expect(await count('SELECT count(*) AS n FROM sagabox.inbox WHERE consumer = $1 AND message_id = $2', ['commit', swallowed])).toBe(0);
      expect(await inboxRows('commit')).toBe(1);
      expect((await client.query('SELECT 1 AS one')).rows[0]).toEqual({ one: 1 });
    } finally {
      client.release();
    }
  });
});
