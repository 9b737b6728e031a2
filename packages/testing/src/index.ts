export * from './start-postgres.js';
export * from './create-test-database.js';
export * from './container-runtime-answers.js';
export * from './start-embedded-postgres.js';
export * from './start-testcontainers-postgres.js';
export * from './start-disposable-postgres.js';
