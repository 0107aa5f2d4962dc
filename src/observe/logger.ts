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

/** The process logger: JSON lines on stdout (fd 1), passwords redacted. */
export function createLogger(cfg: Pick<LogConfig, 'level'>, destination?: NodeJS.WritableStream): Logger {
  const opts = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'socksgate' } };
  return destination ? pino(opts, destination) : pino(opts);
}

/** A logger that drops everything: for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
