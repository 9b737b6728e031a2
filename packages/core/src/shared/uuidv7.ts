import { randomFillSync } from 'node:crypto';
import { V7Generator } from 'uuidv7';

/** 32-bit words of randomness per refill: one call into the OS's generator per 1,024 words. */
const WORDS = 1024;

/**
 * The generator's random words, drawn from the OS's CSPRNG a block at a time. The
 * library's default refills 8 words through `crypto.getRandomValues`, about every
 * third id, and that call (validation, OpenSSL's locks) cost more than the rest of an id.
 */
class BlockRandom {
  readonly #words = new Uint32Array(WORDS);
  #next = WORDS;

  nextUint32(): number {
    if (this.#next === WORDS) {
      randomFillSync(this.#words);
      this.#next = 0;
    }
    return this.#words[this.#next++]!;
  }
}

let generator: V7Generator | undefined;

/**
 * A new UUIDv7 in canonical lower-case form: time-ordered (48-bit millisecond timestamp
 * first), and strictly increasing within the process, ids of the same millisecond
 * included (the library's counter; a clock stepping back less than 10 s keeps the last
 * timestamp). One generator for message ids, saga ids and step timeouts.
 */
export function uuidv7(): string {
  return (generator ??= new V7Generator(new BlockRandom())).generate().toString();
}
