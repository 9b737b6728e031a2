import { describe, expect, it } from 'vitest';
import { InvalidOptionsError } from '@sagabox/core';
import { defineSaga, StepResult } from './define-saga.js';
import { sagaRoutes } from './saga-topics.js';

const command = () => ({ topic: 'a.b', payload: {} });

describe('defineSaga', () => {
  it('returns a frozen definition with typed steps', () => {
    const d = defineSaga({
      name: 'x',
      version: 2,
      initialState: (n: number) => ({ n }),
      steps: (step) => [step.remote<{ ok: true }>({ name: 'a', command, onReply: (_r, s) => StepResult.ok(s) }), step.local({ name: 'b', run: (s) => StepResult.ok(s) })],
    });
    expect(d.steps.map((s) => `${s.kind}:${s.name}`)).toEqual(['remote:a', 'local:b']);
    expect(Object.isFrozen(d)).toBe(true);
    expect(d.initialState(3)).toEqual({ n: 3 });
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      defineSaga({
        name: '',
        version: 0,
        initialState: () => ({}),
        steps: (step) => [
          step.remote({ name: 'a', command, onReply: (_r, s) => StepResult.ok(s), timeoutMs: -1, retry: { maxAttempts: 3 } }),
          step.local({ name: 'a', run: (s) => StepResult.ok(s) }),
        ],
      });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect((error as InvalidOptionsError).problems).toEqual([
      'name must be a string of 1-255 characters',
      'version must be an integer >= 1',
      'steps[0].timeoutMs must be a positive number of milliseconds',
      'steps[1].name "a" is used twice',
    ]);
  });

  it('needs a timeout for a step that is retried on timeout, and at least one step', () => {
    expect(() =>
      defineSaga({ name: 'x', version: 1, initialState: () => 0, steps: (step) => [step.remote({ name: 'a', command, onReply: () => StepResult.fail('no'), retry: { maxAttempts: 2 } })] }),
    ).toThrow(/steps\[0\]\.retry needs timeoutMs/);
    expect(() => defineSaga({ name: 'x', version: 1, initialState: () => 0, steps: () => [] })).toThrow(/at least one step/);
  });
});

describe('sagaRoutes', () => {
  it('routes the reply and control topics to the orchestrator queue', () => {
    expect(sagaRoutes()).toEqual([
      { topic: 'sagabox.saga.reply', queue: 'sagabox.sagas' },
      { topic: 'sagabox.saga.control', queue: 'sagabox.sagas' },
    ]);
    expect(sagaRoutes({ queue: 'orders-sagas', replyTopic: 'orders.saga-reply' })[0]).toEqual({ topic: 'orders.saga-reply', queue: 'orders-sagas' });
  });
});
