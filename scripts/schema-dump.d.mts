// Types of schema-dump.mjs for the TypeScript tests that import it.

/** Where the checked-in snapshot of the sagabox schema lives. */
export const SNAPSHOT_PATH: string;

/** The first lines of the snapshot file. */
export const SNAPSHOT_HEADER: string;

/** Returns the normalised text of `schema` in the database at `url`; `exclude` lists tables to leave out. */
export function dumpSchema(url: string, schema: string, options?: { exclude?: string[] }): Promise<string>;
