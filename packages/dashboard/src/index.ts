export * from './dashboard-handler.js';
export * from './serve-dashboard.js';
export { isLoopbackHost } from './loopback.js';
