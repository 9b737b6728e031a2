import { pino, type Logger as PinoLogger } from 'pino';

/** Log levels the `--log-level` flag accepts. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;

/**
 * The CLI's pino logger: JSON lines on stderr (stdout stays for results), written
 * synchronously so nothing is lost when the process exits right after.
 *
 * @param level - one of {@link LOG_LEVELS}; default `warn`.
 */
export function createCliLogger(level: string = 'warn'): PinoLogger {
  return pino({ name: 'sagabox', level }, pino.destination({ fd: 2, sync: true }));
}
