import { DASHBOARD_PERMISSIONS, type DashboardPermission, type DashboardToken } from '@sagabox/dashboard';
import { UsageError } from './usage-error.js';

/**
 * Parses one `--token` value: `name:secret[:permissions]` (permissions a comma list of
 * `payloads`, `actions`, `read`; none means read only), or a bare secret (no `:`), which
 * keeps its old meaning: a token named `operator` allowed actions, payloads hidden.
 * The dashboard checks the name and the secret's length; a bad permission is a usage error.
 * @example parseDashboardToken('auditor:s3cret-value:payloads') // { name: 'auditor', token: 's3cret-value', permissions: ['payloads'] }
 */
export function parseDashboardToken(spec: string): DashboardToken {
  const first = spec.indexOf(':');
  if (first < 0) return { name: 'operator', token: spec, permissions: ['actions'] };
  const name = spec.slice(0, first);
  const rest = spec.slice(first + 1);
  // The secret ends at the last ':' only when what follows is a permission list, so a
  // secret may itself hold ':' when permissions are given (`name:a:b:actions`).
  const last = rest.lastIndexOf(':');
  const tail = last < 0 ? undefined : rest.slice(last + 1);
  const token = tail === undefined ? rest : rest.slice(0, last);
  const permissions = tail === undefined || tail === '' ? [] : tail.split(',');
  // The message never quotes the value: a misread spec may put part of a secret there.
  if (permissions.some((p) => !DASHBOARD_PERMISSIONS.includes(p as DashboardPermission))) {
    throw new UsageError(`--token ${JSON.stringify(name)}: permissions must be a comma list of ${DASHBOARD_PERMISSIONS.join(', ')} (a secret holding ':' needs them, even none: name:secret:)`);
  }
  return { name, token, permissions: [...new Set(permissions)] as DashboardPermission[] };
}

/** Every token of repeated `--token` flags and the `SAGABOX_DASHBOARD_TOKENS` list (specs separated by whitespace). */
export function dashboardTokens(flags: readonly string[], envList: string | undefined): DashboardToken[] {
  const specs = [...flags, ...(envList ?? '').split(/\s+/).filter((s) => s !== '')];
  return specs.map(parseDashboardToken);
}
