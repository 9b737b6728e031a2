export * from './dashboard-handler.js';
export * from './serve-dashboard.js';
export { DASHBOARD_FAILED_LOGINS_PER_MINUTE, DASHBOARD_PERMISSIONS, DEFAULT_DASHBOARD_SESSION_MS, type DashboardPermission, type DashboardToken } from './dashboard-auth.js';
export { DASHBOARD_LIST_LIMIT, type DashboardQueue } from './dashboard-reads.js';
export { isLoopbackHost } from './loopback.js';
