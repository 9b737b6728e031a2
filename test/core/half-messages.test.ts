import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  commitHalfMessage,
  createRelay,
  createWorker,
  isSagaboxError,
  prepare,
  publish,
  rollbackHalfMessage,
  type HalfMessageChecker,
  type Relay,
  type RelayOptions,
} from '@sagabox/core';
import { halfMessageHistory, listHalfMessages, purgeHalfMessageDecisions } from '@sagabox/core/admin';
import { captureLogger } from '../support/capture-logger.js';
import { useDatabase } from '../support/test-pool.js';
import { stopAfterEach } from '../support/stop-after-each.js';
import { waitFor } from '../support/wait-for.js';

const { db, pool, count } = await useDatabase();
const p = pool(30);
await p.query('CREATE TABLE effects (n bigint GENERATED ALWAYS AS IDENTITY, message_id uuid NOT NULL, payload jsonb)');
await p.query('CREATE TABLE payments (idempotency_key uuid PRIMARY KEY, amount int NOT NULL)');

const { track } = stopAfterEach();

/** A relay routing `hm.#` to queue `hm`, with intervals short enough for tests, and a worker recording effects. */
async function start(options: Partial<RelayOptions> = {}, worker = true): Promise<Relay> {
  const relay = createRelay({
    pool: p,
    routes: [{ topic: 'hm.#', queue: 'hm' }],
    pollIntervalMs: 50,
    checkIntervalMs: 30,
    checkBackoff: { baseDelayMs: 40, maxDelayMs: 200, jitter: false },
    ...options,
  });
  track(relay);
  await relay.start();
  if (worker) {
    const w = createWorker({
      pool: p, queue: 'hm', pollIntervalMs: 50,
      handler: async (m, { client }) => {
        await client.query('INSERT INTO effects (message_id, payload) VALUES ($1, $2)', [m.id, JSON.stringify(m.payload)]);
      },
    });
    track(w);
    await w.start();
  }
  return relay;
}

const effectsOf = (ids: string[]): Promise<number> => count('SELECT count(*) AS n FROM effects WHERE message_id = ANY($1)', [ids]);
const decisionsOf = async (id: string): Promise<string[]> =>
  (await halfMessageHistory(p, id)).map((d) => `${d.source}:${d.decision}`);
const settled = async (ids: string[]): Promise<boolean> =>
  (await count('SELECT count(*) AS n FROM sagabox.outbox WHERE id = ANY($1)', [ids])) === 0 &&
  (await count('SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = ANY($1)', [ids])) === 0;

async function expectCode(promise: Promise<unknown>, code: string): Promise<Record<string, unknown>> {
  try {
    await promise;
  } catch (err) {
    expect(isSagaboxError(err)).toBe(true);
    expect((err as { code: string }).code).toBe(code);
    return (err as { details: Record<string, unknown> }).details;
  }
  throw new Error(`expected a SagaboxError ${code}, but it resolved`);
}

/** Runs the producer fixture, SIGKILLs it once it has done (or skipped) its action, and returns the message id. */
async function producerKilledBeforeCommit(act: boolean): Promise<string> {
  const script = fileURLToPath(new URL('../fixtures/half-message-producer.mjs', import.meta.url));
  const child = spawn(process.execPath, [script], {
    env: { ...process.env, DATABASE_URL: db.url, ACT: act ? '1' : '0', CHECK_AFTER_MS: '300' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`producer said nothing in time; stderr: ${err}`)), 20_000);
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /^(acted|skipped) (\S+)$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[2]!);
        }
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`producer exited (${code}) early; stderr: ${err}`));
      });
    });
    return line;
  } finally {
    child.kill('SIGKILL');
    await exited;
  }
}

const paymentChecker: HalfMessageChecker = async (m) =>
  (await count('SELECT count(*) AS n FROM payments WHERE idempotency_key = $1', [m.id])) > 0 ? 'commit' : 'rollback';

describe('half messages', () => {
  it('never delivers a prepared message before commit, nor a rolled-back one; commit keeps its key order', async () => {
    await start();
    const a = await prepare(p, { topic: 'hm.order', key: 'k1', payload: { n: 'a' } }, { checkAfterMs: 60_000 });
    const b = await prepare(p, { topic: 'hm.order', key: 'k2', payload: { n: 'b' } }, { checkAfterMs: 60_000 });
    // Published after `a` with the same key: it must wait behind the prepared `a`.
    const { ids: [c] } = await publish(p, { topic: 'hm.order', key: 'k1', payload: { n: 'c' } });
    const { ids: [d] } = await publish(p, { topic: 'hm.order', payload: { n: 'd' } });
    await waitFor('the plain message', async () => (await effectsOf([d!])) === 1);
    // Give the relay several more polls to (wrongly) deliver anything prepared.
    await new Promise((r) => setTimeout(r, 300));
    expect(await effectsOf([a.id, b.id, c!])).toBe(0);
    expect(await count(`SELECT count(*) AS n FROM sagabox.queue_messages WHERE id = ANY($1)`, [[a.id, b.id, c!]])).toBe(0);

    expect(await commitHalfMessage(p, a.id)).toEqual({ id: a.id, decision: 'commit', repeated: false });
    expect(await rollbackHalfMessage(p, b.id)).toEqual({ id: b.id, decision: 'rollback', repeated: false });
    await waitFor('a and c', async () => (await effectsOf([a.id, c!])) === 2 && settled([a.id, b.id, c!]));
    const { rows } = await p.query<{ message_id: string }>('SELECT message_id FROM effects WHERE message_id = ANY($1) ORDER BY n', [[a.id, c!]]);
    expect(rows.map((r) => r.message_id)).toEqual([a.id, c]);
    expect(await effectsOf([b.id])).toBe(0);
    expect(await decisionsOf(a.id)).toEqual(['producer:prepared', 'producer:commit']);
    expect(await decisionsOf(b.id)).toEqual(['producer:prepared', 'producer:rollback']);
  });

  it('carries priority and group from prepare through commit into the queue and to the worker', async () => {
    const m = await prepare(p, { topic: 'hm.flow', key: 'fk', payload: { n: 1 }, priority: 7, group: 'tenant-a' }, { checkAfterMs: 60_000 });
    const plain = await prepare(p, { topic: 'hm.flow', payload: { n: 2 } }, { checkAfterMs: 60_000 });
    const { rows: prepared } = await p.query(
      `SELECT id, state, priority, group_key FROM sagabox.outbox WHERE id = ANY($1) ORDER BY seq`, [[m.id, plain.id]]);
    expect(prepared).toEqual([
      { id: m.id, state: 'prepared', priority: 7, group_key: 'tenant-a' },
      { id: plain.id, state: 'prepared', priority: 0, group_key: null },
    ]);
    await commitHalfMessage(p, m.id);
    await commitHalfMessage(p, plain.id);

    // Relay only: the committed messages wait in the queue, where their columns can be read.
    await start({}, false);
    const enqueued = async () => (await p.query(
      `SELECT id, priority, group_key FROM sagabox.queue_messages WHERE queue = 'hm' AND id = ANY($1) ORDER BY seq`, [[m.id, plain.id]])).rows;
    await waitFor('both enqueued', async () => (await enqueued()).length === 2);
    expect(await enqueued()).toEqual([
      { id: m.id, priority: 7, group_key: 'tenant-a' },
      { id: plain.id, priority: 0, group_key: null },
    ]);

    const seen = new Map<string, { priority: number; group: string | null }>();
    const w = createWorker({
      pool: p, queue: 'hm', pollIntervalMs: 50,
      handler: async (message) => {
        seen.set(message.id, { priority: message.priority, group: message.group });
      },
    });
    track(w);
    await w.start();
    await waitFor('both handled', async () => seen.size === 2 && settled([m.id, plain.id]));
    expect(seen.get(m.id)).toEqual({ priority: 7, group: 'tenant-a' });
    expect(seen.get(plain.id)).toEqual({ priority: 0, group: null });
  });

  it('refuses a prepare with an invalid priority or group, storing nothing', async () => {
    await expectCode(prepare(p, { topic: 'hm.flow', payload: {}, priority: 1.5 }), 'INVALID_MESSAGE');
    await expectCode(prepare(p, { topic: 'hm.flow', payload: {}, priority: 40_000 }), 'INVALID_MESSAGE');
    await expectCode(prepare(p, { topic: 'hm.flow', payload: {}, group: '' }), 'INVALID_MESSAGE');
    expect(await listHalfMessages(p, { topic: 'hm.flow' })).toEqual([]);
  });

  it('is idempotent on repeats, and the first decision stands against the opposite one', async () => {
    const x = await prepare(p, { topic: 'hm.repeat', payload: {} }, { checkAfterMs: 60_000 });
    // Preparing the same id again while prepared is a no-op.
    expect(await prepare(p, { id: x.id, topic: 'hm.repeat', payload: {} })).toEqual(x);
    expect((await commitHalfMessage(p, x.id)).repeated).toBe(false);
    expect((await commitHalfMessage(p, x.id)).repeated).toBe(true);
    expect(await expectCode(rollbackHalfMessage(p, x.id), 'HALF_MESSAGE_ALREADY_DECIDED')).toMatchObject({ decision: 'commit' });
    // After delivery the row is gone; the decision record still answers.
    await start();
    await waitFor('x delivered', async () => (await effectsOf([x.id])) === 1 && settled([x.id]));
    expect((await commitHalfMessage(p, x.id)).repeated).toBe(true);
    await expectCode(rollbackHalfMessage(p, x.id), 'HALF_MESSAGE_ALREADY_DECIDED');
    await expectCode(prepare(p, { id: x.id, topic: 'hm.repeat', payload: {} }), 'HALF_MESSAGE_ALREADY_DECIDED');

    const y = await prepare(p, { topic: 'hm.repeat', payload: {} }, { checkAfterMs: 60_000 });
    expect((await rollbackHalfMessage(p, y.id)).repeated).toBe(false);
    expect((await rollbackHalfMessage(p, y.id)).repeated).toBe(true);
    expect(await expectCode(commitHalfMessage(p, y.id), 'HALF_MESSAGE_ALREADY_DECIDED')).toMatchObject({ decision: 'rollback' });
    await expectCode(commitHalfMessage(p, '0190a6d2-0000-7000-8000-000000000000'), 'NOT_FOUND');
    await expectCode(rollbackHalfMessage(p, 'not-a-uuid'), 'INVALID_MESSAGE');
    expect(await decisionsOf(y.id)).toEqual(['producer:prepared', 'producer:rollback']);

    // A decision inside the caller's transaction that rolls back leaves it prepared.
    const z = await prepare(p, { topic: 'hm.repeat', payload: {} }, { checkAfterMs: 60_000 });
    const c = await p.connect();
    try {
      await c.query('BEGIN');
      await commitHalfMessage(c, z.id);
      await c.query('ROLLBACK');
    } finally {
      c.release();
    }
    expect((await listHalfMessages(p, { topic: 'hm.repeat' })).map((m) => m.id)).toEqual([z.id]);
    expect(await decisionsOf(z.id)).toEqual(['producer:prepared']);
    await rollbackHalfMessage(p, z.id);
  });

  it('lets exactly one of a racing commit and rollback win', async () => {
    const ids = await Promise.all(
      Array.from({ length: 30 }, async () => (await prepare(p, { topic: 'hm.race', key: 'race', payload: {} }, { checkAfterMs: 60_000 })).id),
    );
    for (const id of ids) {
      const [commit, rollback, again] = await Promise.allSettled([
        commitHalfMessage(p, id),
        rollbackHalfMessage(p, id),
        commitHalfMessage(p, id),
      ]);
      const wins = [commit, rollback, again].filter((r) => r.status === 'fulfilled' && !r.value.repeated);
      expect(wins).toHaveLength(1);
      const winner = (wins[0] as PromiseFulfilledResult<{ decision: string }>).value.decision;
      const { rows } = await p.query<{ decision: string }>(
        `SELECT decision FROM sagabox.half_message_decisions WHERE message_id = $1 AND decision <> 'prepared'`, [id]);
      expect(rows.map((r) => r.decision)).toEqual([winner]);
      if (winner === 'commit') {
        expect(rollback.status).toBe('rejected');
        expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1 AND state = 'ready'`, [id])).toBe(1);
      } else {
        expect(commit.status).toBe('rejected');
        expect(again.status).toBe('rejected');
        expect(await count(`SELECT count(*) AS n FROM sagabox.outbox WHERE id = $1`, [id])).toBe(0);
      }
      for (const r of [commit, rollback, again]) {
        if (r.status === 'rejected') expect(isSagaboxError(r.reason, 'HALF_MESSAGE_ALREADY_DECIDED')).toBe(true);
      }
    }
    await p.query(`DELETE FROM sagabox.outbox WHERE topic = 'hm.race'`);
  });

  it('resolves a producer SIGKILLed after its action to commit (delivered once), and one killed before it to rollback', async () => {
    const log = captureLogger();
    const acted = await producerKilledBeforeCommit(true);
    const skipped = await producerKilledBeforeCommit(false);
    // The relay starts once both producers are dead: running before, it could ask about
    // `acted` in the gap between its prepare and its payment (300 ms, longer than that
    // on a loaded machine), where rollback is the right answer.
    await start({ checkers: { 'hm.payment': paymentChecker }, logger: log });
    expect(await count('SELECT count(*) AS n FROM payments WHERE idempotency_key = $1', [acted])).toBe(1);
    await waitFor('acted delivered and skipped dropped', async () =>
      (await effectsOf([acted])) === 1 && (await decisionsOf(skipped)).includes('checker:rollback') && settled([acted, skipped]));
    expect(await effectsOf([acted])).toBe(1);
    expect(await effectsOf([skipped])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM sagabox.dead_letters WHERE id = ANY($1)', [[acted, skipped]])).toBe(0);
    expect(await decisionsOf(acted)).toEqual(['producer:prepared', 'checker:commit']);
    expect(await decisionsOf(skipped)).toEqual(['producer:prepared', 'checker:rollback']);
    expect(log.lines).toContainEqual(expect.objectContaining({
      level: 'info', obj: expect.objectContaining({ messageId: acted, topic: 'hm.payment', decision: 'commit', source: 'checker', attempt: 1 }),
    }));
  });

  it('asks again after unknown and after a throwing checker, with backoff, until an answer', async () => {
    const asked = new Map<string, number>();
    const askedAt = new Map<string, number[]>();
    const checker: HalfMessageChecker<{ mode: string }> = async (m, { attempt }) => {
      const n = (asked.get(m.id) ?? 0) + 1;
      asked.set(m.id, n);
      askedAt.set(m.id, [...(askedAt.get(m.id) ?? []), Date.now()]);
      expect(attempt).toBe(n);
      if (n <= 3) {
        if (m.payload.mode === 'unknown') return 'unknown';
        if (m.payload.mode === 'throw') throw new Error(`provider down (${n})`);
        return 'maybe' as never; // not a verdict: a failed check
      }
      return 'commit';
    };
    const relay = await start({ checkers: { 'hm.flaky': checker }, maxChecks: 5 });
    const checked: string[] = [];
    relay.events.on('halfMessageChecked', (e) => checked.push(`${e.id}:${e.decision}`));
    const ids = await Promise.all(['unknown', 'throw', 'garbage'].map(async (mode) =>
      (await prepare(p, { topic: 'hm.flaky', payload: { mode } }, { checkAfterMs: 0 })).id));
    await waitFor('all three delivered', async () => (await effectsOf(ids)) === 3 && settled(ids));
    const [unknown, thrown, garbage] = ids as [string, string, string];
    expect(await decisionsOf(unknown)).toEqual(['producer:prepared', 'checker:unknown', 'checker:unknown', 'checker:unknown', 'checker:commit']);
    expect(await decisionsOf(thrown)).toEqual(['producer:prepared', 'checker:check_failed', 'checker:check_failed', 'checker:check_failed', 'checker:commit']);
    expect(await decisionsOf(garbage)).toEqual(['producer:prepared', 'checker:check_failed', 'checker:check_failed', 'checker:check_failed', 'checker:commit']);
    const history = await halfMessageHistory(p, thrown);
    expect(history[1]!.detail).toContain('provider down (1)');
    expect(history.every((h, i) => i === 0 || h.decidedAt >= history[i - 1]!.decidedAt)).toBe(true);
    expect((await halfMessageHistory(p, garbage))[1]!.detail).toContain('"maybe"');
    for (const id of ids) expect(asked.get(id)).toBe(4);
    // Backoff 40, 80, 160 ms (no jitter): the gaps grow.
    const gaps = askedAt.get(unknown)!.slice(1).map((t, i) => t - askedAt.get(unknown)![i]!);
    expect(gaps[0]!).toBeGreaterThanOrEqual(35);
    expect(gaps[2]!).toBeGreaterThanOrEqual(150);
    expect(checked).toContain(`${unknown}:commit`);
  });

  it('dead-letters a message as unresolved after maxChecks, logs an error, and frees its key', async () => {
    const log = captureLogger();
    let asks = 0;
    const relay = await start({ checkers: { 'hm.never': async () => (asks++, 'unknown') }, maxChecks: 3, logger: log });
    const dead: { id: string; reason: string }[] = [];
    relay.events.on('deadLettered', (e) => dead.push(e));
    const m = await prepare(p, { topic: 'hm.never', key: 'stuck', payload: { x: 1 }, priority: -3, group: 'g-dead' }, { checkAfterMs: 0 });
    const { ids: [after] } = await publish(p, { topic: 'hm.never', key: 'stuck', payload: { x: 2 } });
    await waitFor('dead letter', async () => (await count(`SELECT count(*) AS n FROM sagabox.dead_letters WHERE id = $1`, [m.id])) === 1);
    const { rows: [row] } = await p.query(
      `SELECT source, queue, reason, attempts, error, payload, priority, group_key FROM sagabox.dead_letters WHERE id = $1`, [m.id]);
    expect(row).toMatchObject({
      source: 'outbox', queue: null, reason: 'unresolved', attempts: 3, payload: { x: 1 }, priority: -3, group_key: 'g-dead',
    });
    expect(row.error).toContain('unresolved after 3 checks');
    expect(asks).toBe(3);
    expect(await decisionsOf(m.id)).toEqual(['producer:prepared', 'checker:unknown', 'checker:unknown', 'checker:unknown', 'relay:unresolved']);
    expect(dead).toEqual([expect.objectContaining({ id: m.id, reason: 'unresolved' })]);
    expect(log.lines).toContainEqual(expect.objectContaining({ level: 'error', obj: expect.objectContaining({ messageId: m.id, decision: 'unresolved' }) }));
    await waitFor('the next message of the key', async () => (await effectsOf([after!])) === 1);
    expect(await effectsOf([m.id])).toBe(0);
    await expectCode(commitHalfMessage(p, m.id), 'HALF_MESSAGE_ALREADY_DECIDED');
  });

  it('keeps a message prepared when no checker is registered, and resolves it once one is', async () => {
    const log = captureLogger();
    const relay = await start({ logger: log });
    const m = await prepare(p, { topic: 'hm.unchecked', payload: {} }, { checkAfterMs: 0 });
    await waitFor('no_checker recorded', async () => (await decisionsOf(m.id)).includes('relay:no_checker'));
    const [listed] = await listHalfMessages(p, { topic: 'hm.unchecked' });
    expect(listed).toMatchObject({ id: m.id, topic: 'hm.unchecked', key: null, checks: 0 });
    expect(listed!.checkAt.getTime()).toBeGreaterThan(listed!.createdAt.getTime());
    expect(log.lines).toContainEqual(expect.objectContaining({ level: 'warn', obj: expect.objectContaining({ messageId: m.id, decision: 'no_checker' }) }));
    expect(await effectsOf([m.id])).toBe(0);
    relay.onCheck('hm.unchecked', async () => 'commit');
    await waitFor('delivered after registering', async () => (await effectsOf([m.id])) === 1);
    expect((await decisionsOf(m.id)).at(-1)).toBe('checker:commit');
  });

  it('has each prepared message checked by one relay at a time with two relays running', async () => {
    const inFlight = new Map<string, number>();
    const asked = new Map<string, number>();
    const byRelay = new Set<string>();
    let maxConcurrent = 0;
    const checker = (relay: string): HalfMessageChecker => async (m) => {
      const now = (inFlight.get(m.id) ?? 0) + 1;
      inFlight.set(m.id, now);
      maxConcurrent = Math.max(maxConcurrent, now);
      byRelay.add(relay);
      try {
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 40));
        const n = (asked.get(m.id) ?? 0) + 1;
        asked.set(m.id, n);
        return n < 3 ? 'unknown' : 'commit';
      } finally {
        inFlight.set(m.id, inFlight.get(m.id)! - 1);
      }
    };
    const options = { checkBatchSize: 4, checkBackoff: { baseDelayMs: 0, maxDelayMs: 0, jitter: false } };
    await start({ ...options, name: 'r1', checkers: { 'hm.pair': checker('r1') } });
    await start({ ...options, name: 'r2', checkers: { 'hm.pair': checker('r2') } }, false);
    const ids = await Promise.all(Array.from({ length: 40 }, async (_, i) =>
      (await prepare(p, { topic: 'hm.pair', payload: { i } }, { checkAfterMs: 0 })).id));
    await waitFor('all delivered', async () => (await effectsOf(ids)) === 40 && settled(ids), 30_000);
    expect(maxConcurrent).toBe(1);
    for (const id of ids) expect(asked.get(id)).toBe(3);
    expect([...byRelay].sort()).toEqual(['r1', 'r2']);
  });

  it('makes a producer decision wait for a check in flight; the checker\'s answer then stands', async () => {
    let release!: () => void;
    const asking = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const checking = new Promise<void>((r) => (started = r));
    await start({ checkers: { 'hm.slow': async () => { started(); await asking; return 'rollback'; } } });
    const m = await prepare(p, { topic: 'hm.slow', payload: {} }, { checkAfterMs: 0 });
    await checking;
    let settledAt = 0;
    const late = commitHalfMessage(p, m.id).finally(() => (settledAt = Date.now()));
    await new Promise((r) => setTimeout(r, 150));
    expect(settledAt).toBe(0);
    release();
    expect(await expectCode(late, 'HALF_MESSAGE_ALREADY_DECIDED')).toMatchObject({ decision: 'rollback' });
    expect(await decisionsOf(m.id)).toEqual(['producer:prepared', 'checker:rollback']);
    expect(await effectsOf([m.id])).toBe(0);
  });

  it('counts a checker that outlives checkTimeoutMs as a failed check, aborting its signal', async () => {
    let asks = 0;
    const aborted: unknown[] = [];
    await start({
      checkTimeoutMs: 80,
      checkers: {
        'hm.timeout': async (_m, { signal }) => {
          if (++asks > 2) return 'commit';
          await new Promise((_, reject) => signal.addEventListener('abort', () => { aborted.push(signal.reason); reject(new Error('aborted')); }));
          return 'unknown';
        },
      },
    });
    const m = await prepare(p, { topic: 'hm.timeout', payload: {} }, { checkAfterMs: 0 });
    await waitFor('delivered after two timeouts', async () => (await effectsOf([m.id])) === 1);
    expect(aborted).toHaveLength(2);
    const history = await halfMessageHistory(p, m.id);
    expect(history.map((h) => h.decision)).toEqual(['prepared', 'check_failed', 'check_failed', 'commit']);
    expect(history[1]!.detail).toContain('timed out after 80 ms');
  });

  it('leaves a message untouched when the relay stops mid-check, for the next relay to ask', async () => {
    let started!: () => void;
    const checking = new Promise<void>((r) => (started = r));
    let abortedByStop = false;
    const relay = await start({
      checkers: {
        'hm.stop': (_m, { signal }) => {
          started();
          return new Promise((resolve) => signal.addEventListener('abort', () => { abortedByStop = true; resolve('commit'); }));
        },
      },
    });
    const m = await prepare(p, { topic: 'hm.stop', payload: {} }, { checkAfterMs: 0 });
    await checking;
    await relay.stop();
    expect(abortedByStop).toBe(true);
    expect(await decisionsOf(m.id)).toEqual(['producer:prepared']);
    expect(await listHalfMessages(p, { topic: 'hm.stop' })).toEqual([expect.objectContaining({ id: m.id, checks: 0 })]);
    await start({ checkers: { 'hm.stop': async () => 'rollback' } }, false);
    await waitFor('rolled back by the next relay', async () => (await decisionsOf(m.id)).includes('checker:rollback'));
    expect(await listHalfMessages(p, { topic: 'hm.stop' })).toEqual([]);
  });

  it('survives its connection being killed during a check, and asks again', async () => {
    let asks = 0;
    const errors: unknown[] = [];
    const relay = await start({
      checkers: {
        'hm.killed': async () => {
          if (++asks === 1) {
            // Kill the checking relay's own connection, idle in its transaction right now.
            const { rowCount } = await p.query(`
              SELECT pg_terminate_backend(pid) FROM pg_stat_activity
              WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE '%check_at <= coalesce%'`);
            expect(rowCount).toBe(1);
          }
          return 'commit';
        },
      },
    });
    relay.events.on('error', (e) => errors.push(e.error));
    const m = await prepare(p, { topic: 'hm.killed', payload: {} }, { checkAfterMs: 0 });
    await waitFor('delivered after the retry', async () => (await effectsOf([m.id])) === 1 && settled([m.id]));
    expect(asks).toBe(2);
    expect(errors.length).toBeGreaterThanOrEqual(1);
    // The answer lost with the connection was never recorded; the second one was, once.
    expect(await decisionsOf(m.id)).toEqual(['producer:prepared', 'checker:commit']);
  });

  it('shows prepared messages and purges old histories of finished ones', async () => {
    const m = await prepare(p, { topic: 'hm.admin', key: 'adm', payload: {} }, { checkAfterMs: 120_000, note: 'order 7' });
    const [listed] = await listHalfMessages(p, { topic: 'hm.admin' });
    expect(listed).toMatchObject({ id: m.id, key: 'adm', checks: 0 });
    expect(listed!.checkAt.getTime() - listed!.createdAt.getTime()).toBeGreaterThan(100_000);
    expect(await listHalfMessages(p, { topic: 'hm.admin', dueOnly: true })).toEqual([]);
    expect((await halfMessageHistory(p, m.id))[0]).toMatchObject({ messageId: m.id, decision: 'prepared', source: 'producer', detail: 'order 7' });
    expect(await purgeHalfMessageDecisions(p, { olderThanMs: 0 })).toBeGreaterThan(0);
    // Still prepared: its history is kept.
    expect(await decisionsOf(m.id)).toEqual(['producer:prepared']);
    await rollbackHalfMessage(p, m.id);
    await expectCode(prepare(p, { topic: 'hm.admin', payload: {} }, { checkAfterMs: -1 }), 'INVALID_OPTIONS');
  });
});
