import { uuidv7 } from 'uuidv7';

/** A UUIDv7 of the given millisecond (random bits from a fresh v7). */
export function uuidv7At(ms: number): string {
  const hex = ms.toString(16).padStart(12, '0');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}${uuidv7().slice(13)}`;
}
