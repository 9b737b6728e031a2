/** The UUID whose first 48 bits are `ms`, rest zero: the smallest UUIDv7 of that millisecond. */
export function uuidAtMs(ms: number): string {
  const hex = Math.max(0, Math.min(ms, 2 ** 48 - 1)).toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`;
}

/** The time in a UUIDv7's first 48 bits, in milliseconds since the epoch. */
export function msOfUuid(uuid: string): number {
  return Number.parseInt(uuid.replaceAll('-', '').slice(0, 12), 16);
}

/**
 * `dead_letters_p20261202` for a partition starting at midnight UTC,
 * `dead_letters_p20261202_101500_000` otherwise.
 */
export function partitionName(table: string, fromMs: number): string {
  const iso = new Date(fromMs).toISOString(); // 2026-12-02T10:15:00.000Z
  const day = iso.slice(0, 10).replaceAll('-', '');
  const rest = iso.slice(11, 23).replaceAll(':', '').replace('.', '_');
  return rest === '000000_000' ? `${table}_p${day}` : `${table}_p${day}_${rest}`;
}

/** The ranges to create so that [nowMs - partitionMs, nowMs + aheadMs) is covered, fitted between existing partitions. */
export function missingRanges(existing: readonly { fromMs: number; toMs: number }[], nowMs: number, partitionMs: number, aheadMs: number): { fromMs: number; toMs: number }[] {
  const sorted = [...existing].sort((a, b) => a.fromMs - b.fromMs);
  const out: { fromMs: number; toMs: number }[] = [];
  let cursor = Math.floor(nowMs / partitionMs) * partitionMs;
  const end = nowMs + aheadMs;
  while (cursor < end) {
    const covering = sorted.find((p) => p.fromMs <= cursor && cursor < p.toMs);
    if (covering) {
      cursor = covering.toMs;
      continue;
    }
    const next = sorted.find((p) => p.fromMs > cursor);
    const toMs = Math.min(Math.floor(cursor / partitionMs) * partitionMs + partitionMs, next?.fromMs ?? Infinity);
    out.push({ fromMs: cursor, toMs });
    cursor = toMs;
  }
  return out;
}
