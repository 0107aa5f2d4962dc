import { pino, type Logger } from 'pino';
import type { LogConfig } from '../config/types.js';

export type { Logger };

/** Paths that may hold secrets anywhere a config or credential object is logged. */
const REDACT = [
  'password',
  '*.password',
  '*.*.password',
  'password_hash',
  '*.password_hash',
  'config.auth',
  'config.upstreams.*.password',
];

/**
 * The process logger: JSON lines on stdout (fd 1), passwords redacted. Writes are
 * asynchronous so a slow log consumer (a pipe, a container runtime) does not stall
 * relaying; pending lines are flushed before the process exits.
 */
export function createLogger(cfg: Pick<LogConfig, 'level'>, destination?: NodeJS.WritableStream): Logger {
  const opts = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'socksgate' } };
  return pino(opts, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything: for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
