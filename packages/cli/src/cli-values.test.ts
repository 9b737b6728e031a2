import { describe, expect, it } from 'vitest';
import { formatDuration, parseDurationFlag } from './cli-values.js';
import { fitTable } from './fit-table.js';

describe('parseDurationFlag', () => {
  it('reads milliseconds and ms, s, m, h, d', () => {
    expect(parseDurationFlag('--x', '250')).toBe(250);
    expect(parseDurationFlag('--x', '250ms')).toBe(250);
    expect(parseDurationFlag('--x', '90s')).toBe(90_000);
    expect(parseDurationFlag('--x', '15m')).toBe(900_000);
    expect(parseDurationFlag('--x', '1.5h')).toBe(5_400_000);
    expect(parseDurationFlag('--x', '7d')).toBe(604_800_000);
  });

  it('refuses words, signs, spaces, unknown units and values out of range, naming the flag', () => {
    for (const bad of ['', 'soon', '-5s', '5 s', '5w', '1e3', '5sec']) {
      expect(() => parseDurationFlag('--older-than', bad)).toThrow(/^--older-than must be a duration/);
    }
    expect(() => parseDurationFlag('--refresh', '100', 200, 3_600_000)).toThrow('--refresh must be a duration from 200ms to 1h');
    expect(() => parseDurationFlag('--refresh', '2h', 200, 3_600_000)).toThrow(/got "2h"/);
  });

  it('formats in the largest unit that divides', () => {
    expect([formatDuration(90_000), formatDuration(900_000), formatDuration(604_800_000), formatDuration(1_500)]).toEqual(['90s', '15m', '7d', '1500ms']);
  });
});

describe('fitTable', () => {
  it('fits 80 columns, narrowing the widest column and ending cut cells in an ellipsis', () => {
    const error = 'x'.repeat(200);
    const text = fitTable(['id', 'error'], [['0195f5c4-7c1e-7b6a-9e2f-1a2b3c4d5e6f', error]], 80, [0]);
    const lines = text.split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBe(80);
    expect(text).toContain('0195f5c4-7c1e-7b6a-9e2f-1a2b3c4d5e6f');
    expect(text).toMatch(/x…/);
    expect(text).not.toContain(error);
  });

  it('leaves a narrow table as it is', () => {
    expect(fitTable(['a', 'b'], [['1', '2']], 80)).toBe(['┌───┬───┐', '│ a │ b │', '├───┼───┤', '│ 1 │ 2 │', '└───┴───┘'].join('\n'));
  });
});
