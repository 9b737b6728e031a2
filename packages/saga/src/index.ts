export * from './define-saga.js';
export * from './saga-topics.js';
export type { SagaStatus } from './saga-sql.js';
export * from './start-saga.js';
export * from './create-orchestrator.js';
export * from './participant.js';
export * from './list-sagas.js';
export * from './cancel-saga.js';
export { SAGA_EVENT_STEP } from './saga-transition.js';
