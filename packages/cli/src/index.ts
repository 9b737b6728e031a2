export * from './create-program.js';
export * from './run-cli.js';
export * from './migrate-command.js';
export * from './connection-options.js';
export * from './usage-error.js';
export * from './cli-logger.js';
export * from './exit-codes.js';
export * from './fit-table.js';
