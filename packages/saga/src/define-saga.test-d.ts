// Type tests: checked by `tsc -p packages/saga/tsconfig.typecheck.json` (run from
// test/saga/types.test.ts). Every `@ts-expect-error` must meet an error, or tsc fails.
import { match } from 'ts-pattern';
import { defineSaga, StepResult, type SagaInput, type SagaState } from './index.js';

type ReserveReply = { type: 'reserved'; reservationId: string } | { type: 'out_of_stock' } | { type: 'sku_unknown'; sku: string };

const initialState = (input: { orderId: string; sku: string }) => ({ ...input, reservationId: null as string | null });

// An exhaustive match compiles, and the state is inferred from initialState.
export const exhaustive = defineSaga({
  name: 'order',
  version: 1,
  initialState,
  steps: (step) => [
    step.remote<ReserveReply>({
      name: 'reserve',
      command: (s) => ({ topic: 'inventory.reserve', payload: { orderId: s.orderId, sku: s.sku } }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'reserved' }, (r) => StepResult.ok({ ...s, reservationId: r.reservationId }))
          .with({ type: 'out_of_stock' }, () => StepResult.fail('out of stock'))
          .with({ type: 'sku_unknown' }, (r) => StepResult.fail(`unknown sku ${r.sku}`))
          .exhaustive(),
      compensate: (s) => (s.reservationId ? { topic: 'inventory.release', payload: { id: s.reservationId } } : undefined),
    }),
    step.local({ name: 'note', run: (s) => StepResult.ok(s) }),
  ],
});

const input: SagaInput<typeof exhaustive> = { orderId: 'o1', sku: 's1' };
const state: SagaState<typeof exhaustive> = { orderId: 'o1', sku: 's1', reservationId: null };
void input;
void state;

// A reply type left unmatched ('sku_unknown') does not compile.
export const nonExhaustive = defineSaga({
  name: 'order',
  version: 2,
  initialState,
  steps: (step) => [
    step.remote<ReserveReply>({
      name: 'reserve',
      command: (s) => ({ topic: 'inventory.reserve', payload: { sku: s.sku } }),
      onReply: (reply, s) =>
        match(reply)
          .with({ type: 'reserved' }, (r) => StepResult.ok({ ...s, reservationId: r.reservationId }))
          .with({ type: 'out_of_stock' }, () => StepResult.fail('out of stock'))
          // @ts-expect-error -- NonExhaustiveError: { type: 'sku_unknown' } is not handled
          .exhaustive(),
    }),
  ],
});

// The new state must have the saga's state type.
export const wrongState = defineSaga({
  name: 'order',
  version: 3,
  initialState,
  steps: (step) => [
    step.remote<ReserveReply>({
      name: 'reserve',
      command: (s) => ({ topic: 'inventory.reserve', payload: { sku: s.sku } }),
      onReply: (reply, s) =>
        // @ts-expect-error -- reservationId must be a string or null
        match(reply)
          .with({ type: 'reserved' }, () => StepResult.ok({ ...s, reservationId: 42 }))
          .otherwise(() => StepResult.fail('no')),
    }),
  ],
});

// Steps see the state type: a property that does not exist is an error.
export const wrongProperty = defineSaga({
  name: 'order',
  version: 4,
  initialState,
  steps: (step) => [
    step.local({
      name: 'x',
      // @ts-expect-error -- no property 'customerId' on the state
      run: (s) => StepResult.fail(s.customerId),
    }),
  ],
});
