/**
 * SQL for a timestamp column as whole milliseconds since the epoch (truncated, as a Date
 * parsed from its text would be), or null: a number the caller makes a Date of, rather
 * than a timestamp text node-postgres parses with a regular expression for every row.
 * Rounded after the multiply, which a float can leave a hair below the millisecond.
 */
export const epochMs = (column: string): string => `round(date_part('epoch', date_trunc('milliseconds', ${column})) * 1000)`;
