import type pg from 'pg';

/** The rings of queue_messages and of the outbox: four partitions by slot each (migration 0001: queue_part). */
export const RING_SLOTS = [0, 1, 2, 3] as const;

/** The slot of a millisecond time, as queue_part reads it from a UUIDv7: bits 10-11. */
export const slotAt = (ms: number): number => Math.floor(ms / 1024) % 4;

/** A time in the middle of `slot`, in some ring turn of 2030: a p_now whose slot is known. */
export const timeInSlot = (slot: number): Date => new Date(Math.floor(Date.UTC(2030, 0, 1) / 4096) * 4096 + slot * 1024 + 512);

/** One partition of the ring: its file on disk (a TRUNCATE gives it a new one) and its size. */
export interface RingSlot {
  slot: number;
  filenode: number;
  bytes: number;
}

/** A ring's table. */
export type Ring = 'queue_messages' | 'outbox';

/** The four partitions of `schema`.`ring`, slot 0 first. */
export async function ringState(db: pg.Pool | pg.ClientBase, schema = 'sagabox', ring: Ring = 'queue_messages'): Promise<RingSlot[]> {
  const { rows } = await db.query<{ slot: number; filenode: string; bytes: string }>(
    `SELECT s AS slot, pg_relation_filenode(format('%I.%I', $1::text, $2::text || '_' || s)::regclass) AS filenode,
            pg_relation_size(format('%I.%I', $1::text, $2::text || '_' || s)::regclass) AS bytes
     FROM generate_series(0, 3) s ORDER BY s`,
    [schema, ring],
  );
  return rows.map((r) => ({ slot: r.slot, filenode: Number(r.filenode), bytes: Number(r.bytes) }));
}

/** What rotate_queue_messages or rotate_outbox returned. */
export interface Rotation {
  truncated: number[];
  busy: number[];
  moved: number;
}

/**
 * Calls rotate_queue_messages (or rotate_outbox, with `ring`): at `now` when given (it picks the slots looked at), moving
 * at most `maxMove` messages a slot (default: the function's), waiting up to `waitMs` for
 * a slot's lock (default: the function's, none). `minDead` (default 0: off) is the dead
 * rows the statistics must count in a slot, and at least as many as its messages, before
 * it is emptied; the workers call it with 256.
 */
export async function rotate(db: pg.Pool | pg.ClientBase, o: { now?: Date; maxMove?: number; minDead?: number; waitMs?: number; ring?: Ring } = {}, schema = 'sagabox'): Promise<Rotation> {
  const args: string[] = ['p_now => $1', 'p_min_dead => $2'];
  const values: unknown[] = [o.now ?? null, o.minDead ?? 0];
  if (o.maxMove !== undefined) args.push(`p_max_move => $${values.push(o.maxMove)}`);
  if (o.waitMs !== undefined) args.push(`p_wait_ms => $${values.push(o.waitMs)}`);
  const { rows } = await db.query<Rotation>(`SELECT truncated, busy, moved FROM ${schema}.rotate_${o.ring ?? 'queue_messages'}(${args.join(', ')})`, values);
  return rows[0]!;
}

/**
 * A report left open elsewhere in the database: a REPEATABLE READ transaction whose
 * snapshot holds vacuum back until `release`. It reads `sagabox.queues`, not the queue, so
 * it holds no lock on queue_messages' partitions.
 */
export async function holdSnapshot(pool: pg.Pool): Promise<{ client: pg.PoolClient; release: () => Promise<void> }> {
  const client = await pool.connect();
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
  await client.query('SELECT count(*) FROM sagabox.queues');
  return {
    client,
    release: async () => {
      await client.query('ROLLBACK').catch(() => {});
      client.release();
    },
  };
}
