import { pino, type Logger } from 'pino';
import { build as prettyStream } from 'pino-pretty';
import type { LogConfig } from '../config/types.js';

export type { Logger };

/**
 * Where a secret could reach a log line: a credential object logged as such, and the
 * `socks` package's errors, which carry their options (proxy.password) as an enumerable
 * property that pino's error serializer copies. Exact paths only: wildcard paths cost
 * about 20 µs on every line, the access log's included.
 */
const REDACT = [
  'password',
  'password_hash',
  'options.proxy.password',
  'err.options.proxy.password',
  'err.cause.options.proxy.password',
];

/**
 * The process logger: JSON lines on stdout (fd 1), passwords redacted. Writes are
 * asynchronous so a slow log consumer (a pipe, a container runtime) does not stall
 * relaying; pending lines are flushed before the process exits. `format: pretty` renders
 * the same lines for a person at a terminal (pino-pretty, in this process: no worker).
 */
export function createLogger(cfg: Pick<LogConfig, 'level'> & Partial<Pick<LogConfig, 'format'>>, destination?: NodeJS.WritableStream): Logger {
  const opts = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'socksgate' } };
  if (cfg.format === 'pretty') {
    const out = destination ?? pino.destination({ dest: 1, sync: false });
    return pino(opts, prettyStream({ destination: out, colorize: destination === undefined && process.stdout.isTTY, translateTime: 'SYS:standard', ignore: 'pid,hostname' }));
  }
  return pino(opts, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything: for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
