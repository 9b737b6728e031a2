import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { dashboardTokens, parseDashboardToken } from './dashboard-tokens.js';
import { UsageError } from './usage-error.js';

describe('parseDashboardToken', () => {
  it('reads name:secret[:permissions]; a bare secret is the operator token', () => {
    expect(parseDashboardToken('viewer:viewer-token-1')).toEqual({ name: 'viewer', token: 'viewer-token-1', permissions: [] });
    expect(parseDashboardToken('oncall:oncall-token-1:payloads,actions')).toEqual({ name: 'oncall', token: 'oncall-token-1', permissions: ['payloads', 'actions'] });
    expect(parseDashboardToken('x:se:cret-123:')).toEqual({ name: 'x', token: 'se:cret-123', permissions: [] });
    expect(parseDashboardToken('x:se:cret-123:actions,actions')).toEqual({ name: 'x', token: 'se:cret-123', permissions: ['actions'] });
    expect(parseDashboardToken('legacy-secret')).toEqual({ name: 'operator', token: 'legacy-secret', permissions: ['actions'] });
    expect(dashboardTokens(['a:aaaaaaaa'], '  b:bbbbbbbb:actions\n c:cccccccc ').map((t) => t.name)).toEqual(['a', 'b', 'c']);
  });

  it('refuses an unknown permission with a usage error that never holds the secret or the permissions', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ minLength: 1 }).filter((p) => !p.includes(':') && p.split(',').some((x) => !['read', 'payloads', 'actions'].includes(x))), (secret, perms) => {
        const spec = `alice:${secret}:${perms}`;
        let err: unknown;
        try { parseDashboardToken(spec); } catch (e) { err = e; }
        expect(err).toBeInstanceOf(UsageError);
        // The same message whatever the secret and the permissions were.
        expect((err as Error).message).toBe(`--token "alice": permissions must be a comma list of read, payloads, actions (a secret holding ':' needs them, even none: name:secret:)`);
      }),
    );
  });
});
