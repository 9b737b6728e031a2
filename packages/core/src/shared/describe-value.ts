/**
 * A short, safe description of any value for an error message: strings quoted and cut
 * at 100 characters, BigInts with their `n`, objects by kind. Never throws (unlike
 * `JSON.stringify`, which throws on a BigInt or a cycle, and can be huge).
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 100 ? `${value.slice(0, 100)}…` : value);
    case 'bigint':
      return `${value}n`;
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      if (value === null) return 'null';
      if (Array.isArray(value)) return 'an array';
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'an invalid Date' : `a Date (${value.toISOString()})`;
      return 'an object';
  }
}
