export * from './create-metrics.js';
export * from './serve-metrics.js';
export * from './trace-context.js';
export { SAGA_CHANGE_OVERLAP_MS } from './database-snapshot.js';
