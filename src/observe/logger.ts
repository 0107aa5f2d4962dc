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
 * Lines are gathered up to this many bytes before one write(2): one syscall per access-log
 * line cost 10-15 % of the gateway's CPU at a few thousand connections a second.
 */
const LOG_BUFFER_BYTES = 4096;
/** A quiet gateway's lines still reach the consumer within this long. */
const LOG_FLUSH_MS = 100;

/**
 * stdout, asynchronous and buffered; pino flushes it synchronously on exit (normal or
 * process.exit). Buffer mode: sonic-boom keeps the lines as a list and joins them once per
 * write(2). In its string mode it appends each line to one pending string and measures that
 * string again, flattening it: a copy of everything pending for every line, about 2 KB of
 * garbage per access-log line at LOG_BUFFER_BYTES.
 */
function stdout(): ReturnType<typeof pino.destination> {
  const boom = pino.destination({ dest: 1, sync: false, minLength: LOG_BUFFER_BYTES, periodicFlush: LOG_FLUSH_MS, contentMode: 'buffer' });
  // pino (and pino-pretty) write strings; buffer mode takes Buffers.
  const writeBuffer = boom.write.bind(boom) as unknown as (chunk: Buffer) => boolean;
  boom.write = (line: string): boolean => writeBuffer(Buffer.from(line));
  return boom;
}

/**
 * The process logger: JSON lines on stdout (fd 1), passwords redacted. Writes are
 * asynchronous and buffered so a slow log consumer (a pipe, a container runtime) does not
 * stall relaying; pending lines are flushed every LOG_FLUSH_MS and before the process exits. `format: pretty` renders
 * the same lines for a person at a terminal (pino-pretty, in this process: no worker).
 */
export function createLogger(cfg: Pick<LogConfig, 'level'> & Partial<Pick<LogConfig, 'format'>>, destination?: NodeJS.WritableStream): Logger {
  const opts = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'socksgate' } };
  if (cfg.format === 'pretty') {
    const out = destination ?? stdout();
    return pino(opts, prettyStream({ destination: out, colorize: destination === undefined && process.stdout.isTTY, translateTime: 'SYS:standard', ignore: 'pid,hostname' }));
  }
  return pino(opts, destination ?? stdout());
}

/** A logger that drops everything: for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
