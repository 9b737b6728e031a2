import { describe, expect, it } from 'vitest';
import { resolveOptions } from '../../bench/src/harness/options.js';

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
});
