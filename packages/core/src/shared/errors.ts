/**
 * Every error sagabox throws on purpose. `code` is stable and meant for programs;
 * `message` is for people. Wrapped errors are kept in `cause`.
 */
export type SagaboxErrorCode =
  | 'INVALID_SCHEMA_NAME'
  | 'INVALID_OPTIONS'
  | 'INVALID_TOPIC'
  | 'INVALID_QUEUE_NAME'
  | 'INVALID_MESSAGE'
  | 'INVALID_PAYLOAD'
  | 'INVALID_HEADERS'
  | 'PAYLOAD_TOO_LARGE'
  | 'VALIDATION_FAILED'
  | 'DATABASE_UNREACHABLE'
  | 'MIGRATION_CHECKSUM_MISMATCH'
  | 'MIGRATION_FAILED'
  | 'MIGRATION_NOT_REVERSIBLE'
  | 'SCHEMA_TOO_NEW'
  | 'UNSUPPORTED_EXECUTOR'
  | 'NOT_FOUND'
  | 'HALF_MESSAGE_ALREADY_DECIDED'
  | 'UNKNOWN_SAGA'
  | 'UNKNOWN_SAGA_VERSION'
  | 'SAGA_CONFLICT'
  | 'COMPENSATION_FAILED'
  | 'STOP_TIMEOUT'
  | 'BROKER_REJECTED'
  | 'BROKER_UNREACHABLE'
  | 'HANDLER_TIMEOUT'
  | 'INVALID_OUTCOME';

/** Base class of every error sagabox throws on purpose. */
export class SagaboxError extends Error {
  /** What went wrong, as a stable string to branch on; every code is listed in docs/errors.md. */
  readonly code: SagaboxErrorCode;
  /** Extra structured facts about the error (ids, names), safe to log. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: SagaboxErrorCode,
    message: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'SagaboxError';
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** Thrown when options fail validation; lists every problem found, not only the first. */
export class InvalidOptionsError extends SagaboxError {
  /** Every problem found in the options, one line each. */
  readonly problems: readonly string[];
  constructor(what: string, problems: readonly string[]) {
    super('INVALID_OPTIONS', `invalid ${what} options: ${problems.join('; ')}`, {
      details: { problems },
    });
    this.name = 'InvalidOptionsError';
    this.problems = problems;
  }
}

/** True when `err` is a {@link SagaboxError}, optionally with the given code. */
export function isSagaboxError(err: unknown, code?: SagaboxErrorCode): err is SagaboxError {
  return err instanceof SagaboxError && (code === undefined || err.code === code);
}
