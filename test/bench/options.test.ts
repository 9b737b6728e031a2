import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { resolveOptions } from '../../bench/src/harness/options.js';
import { loadVariants } from '../../bench/src/harness/registry.js';
import { loadStorageSystems } from '../../bench/src/harness/storage-system.js';

const resolve = (argv: string[], env: NodeJS.ProcessEnv = {}) => {
  const o = resolveOptions(argv, env);
  if ('help' in o) throw new Error('unexpected help');
  return o;
};

describe('bench options', () => {
  it('writes the report unless told not to, by flag or through npm', () => {
    expect(resolve([]).writeReport).toBe(true);
    expect(resolve(['--no-report']).writeReport).toBe(false);
    // `npm run bench -- --no-report` at the root: the inner npm run leaves npm_config_report empty.
    expect(resolve([], { npm_config_report: '' }).writeReport).toBe(false);
    expect(resolve([], { npm_config_no_report: 'true' }).writeReport).toBe(false);
    expect(resolve([], { npm_config_report: 'true' }).writeReport).toBe(true);
  });

  it('reads flags that npm turned into npm_config_* variables', () => {
    const o = resolve([], { npm_config_workloads: 'w2,nats', npm_config_w2_messages: '200000' });
    expect(o.workloads).toEqual(['w2', 'nats']);
    expect(o.w2Messages).toBe(200_000);
  });

  it('reports every problem at once', () => {
    const message = (() => {
      try {
        resolve(['--workloads=w9', '--w2-messages=-1', '--systems=some']);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(message).toContain('unknown w9');
    expect(message).toContain('--w2-messages must be a number');
    expect(message).toContain('--only must be all, peers or sagabox');
  });

  it('runs churn only when asked for by name, with its quick and full defaults', () => {
    expect(resolve([]).workloads).not.toContain('churn');
    expect(resolve(['--workloads=storage']).workloads).toEqual(['snapshot', 'backlog']);
    expect(resolve(['storage']).workloads).toEqual(['snapshot', 'backlog']);
    const full = resolve(['--workloads=churn']);
    expect(full.workloads).toEqual(['churn']);
    expect(full).toMatchObject({ churnMs: 30 * 60_000, churnRate: 1_000, churnSagaRate: 20, churnWindowMs: 60_000, churnRetentionMs: 5 * 60_000 });
    const quick = resolve(['churn', 'quick']);
    expect(quick.workloads).toEqual(['churn']);
    expect(quick).toMatchObject({ churnMs: 2 * 60_000, churnRate: 1_000, churnWindowMs: 15_000, churnRetentionMs: 60_000 });
  });

  it('reads the churn options, from flags or through npm', () => {
    const o = resolve(['--churn-minutes=10', '--churn-rate=500', '--churn-saga-rate=0', '--churn-window-seconds=30', '--churn-retention-minutes=2']);
    expect(o).toMatchObject({ churnMs: 600_000, churnRate: 500, churnSagaRate: 0, churnWindowMs: 30_000, churnRetentionMs: 120_000 });
    expect(resolve([], { npm_config_churn_minutes: '1', npm_config_churn_rate: '200' })).toMatchObject({ churnMs: 60_000, churnRate: 200 });
    const message = (() => {
      try {
        resolve(['--churn-rate=0', '--churn-saga-rate=-1', '--churn-minutes=x']);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(message).toContain('--churn-rate must be a number >= 2');
    expect(message).toContain('--churn-saga-rate must be a number >= 0');
    expect(message).toContain('--churn-minutes must be a number');
  });
});

describe('bench system selection', () => {
  it('runs both sagabox storage systems and the peers by default, and --variants picks among them', async () => {
    expect((await loadStorageSystems('all')).systems.map((s) => s.id)).toEqual(['sagabox', 'sagabox_outbox', 'graphile', 'pgboss']);
    expect((await loadStorageSystems('sagabox', ['sagabox_outbox'])).systems.map((s) => s.id)).toEqual(['sagabox_outbox']);
    expect((await loadStorageSystems('all', ['pgboss', 'sagabox'])).systems.map((s) => s.id)).toEqual(['sagabox', 'pgboss']);
  });

  it('accepts a storage system as --variants and still refuses an unknown id', async () => {
    const loaded = await loadVariants('sagabox', ['sagabox_outbox']);
    expect(Object.values(loaded.variants).flat()).toEqual([]);
    await expect(loadVariants('all', ['sagabox_outbox', 'nope'])).rejects.toThrow('--variants: no variant nope');
  });
});

describe('bench environment', () => {
  it('reads the versions of the packages it compares from the hoisted node_modules', async () => {
    const { installedVersion } = await import('../../bench/src/harness/environment.js');
    const pgVersion = (JSON.parse(readFileSync(new URL('../../node_modules/pg/package.json', import.meta.url), 'utf8')) as { version: string }).version;
    expect(installedVersion('pg')).toBe(pgVersion);
    expect(installedVersion('graphile-worker')).toMatch(/^\d+\.\d+\.\d+/);
    expect(installedVersion('no-such-package-here')).toBe('not installed');
  });
});
