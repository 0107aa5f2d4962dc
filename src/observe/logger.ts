import { hasSubscribers } from 'node:diagnostics_channel';
import { pino, type DestinationStream, type Logger } from 'pino';
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
 * Bytes of lines waiting for stdout at most: a consumer that stops reading (a stuck pipe, a
 * log shipper down) must not grow the gateway's memory without end. Lines past it are dropped
 * and counted (socksgate_log_lines_dropped_total); some 20 000 access-log lines ride it out.
 */
export const LOG_PENDING_MAX_BYTES = 8 * 1024 * 1024;
let droppedLines = 0;

/** Lines dropped since start because stdout did not keep up (LOG_PENDING_MAX_BYTES). */
export function droppedLogLines(): number {
  return droppedLines;
}

/** Every stdout stream made: flushLog writes out theirs too (under pino-pretty, pino's flush does not reach them). */
const stdoutStreams = new Set<ReturnType<typeof pino.destination>>();

/**
 * stdout, asynchronous and buffered; pino flushes it synchronously on exit (normal or
 * process.exit). Buffer mode: sonic-boom keeps the lines as a list and joins them once per
 * write(2). In its string mode it appends each line to one pending string and measures that
 * string again, flattening it: a copy of everything pending for every line, about 2 KB of
 * garbage per access-log line at LOG_BUFFER_BYTES.
 */
function stdout(): ReturnType<typeof pino.destination> {
  const boom = pino.destination({
    dest: 1,
    sync: false,
    minLength: LOG_BUFFER_BYTES,
    maxLength: LOG_PENDING_MAX_BYTES,
    periodicFlush: LOG_FLUSH_MS,
    contentMode: 'buffer',
  });
  boom.on('drop', () => droppedLines++);
  stdoutStreams.add(boom);
  // pino (and pino-pretty) write strings; buffer mode takes Buffers.
  const writeBuffer = boom.write.bind(boom) as unknown as (chunk: Buffer) => boolean;
  boom.write = (line: string): boolean => writeBuffer(Buffer.from(line));
  return boom;
}

/**
 * C1 controls (U+0080-U+009F) and DEL pass JSON.stringify and pino-pretty raw, and terminals
 * that honour 8-bit controls act on them (U+009B is CSI): a client's USERID or destination
 * name would then steer the terminal showing the log. Every line is written with them as
 * \u escapes, which JSON reads back as the same characters. Control characters below U+0020
 * are escaped by JSON.stringify already.
 */
const RAW_CONTROL = /[\u007f-\u009f]/;
const RAW_CONTROLS = /[\u007f-\u009f]/g;
const escapeControl = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `stream`, its write replaced by one that escapes raw controls (pino and the line writer both write through it). */
function escapingControls<T extends DestinationStream>(stream: T): T {
  const write = stream.write.bind(stream);
  stream.write = (line: string): void => {
    write(RAW_CONTROL.test(line) ? line.replace(RAW_CONTROLS, escapeControl) : line);
  };
  return stream;
}

/**
 * The process logger: JSON lines on stdout (fd 1), passwords redacted, C1 controls escaped. Writes are
 * asynchronous and buffered so a slow log consumer (a pipe, a container runtime) does not
 * stall relaying; pending lines are flushed every LOG_FLUSH_MS and before the process exits. `format: pretty` renders
 * the same lines for a person at a terminal (pino-pretty, in this process: no worker).
 */
export function createLogger(cfg: Pick<LogConfig, 'level'> & Partial<Pick<LogConfig, 'format'>>, destination?: DestinationStream): Logger {
  const opts = { level: cfg.level, redact: { paths: REDACT, censor: '[redacted]' }, base: { name: 'socksgate' } };
  if (cfg.format === 'pretty') {
    const out = escapingControls(destination ?? stdout());
    return pino(opts, prettyStream({ destination: out, colorize: destination === undefined && process.stdout.isTTY, translateTime: 'SYS:standard', ignore: 'pid,hostname' }));
  }
  return pino(opts, escapingControls(destination ?? stdout()));
}

const S = pino.symbols;
/** The diagnostics channel pino publishes each line's serializing on. */
const AS_JSON_TRACE = 'tracing:pino_asJson:start';
/** Exported by pino, missing from its type declarations. */
const MSG_PREFIX = (pino.symbols as unknown as Record<string, symbol | undefined>)['msgPrefixSym'];

/** The writer of one line: `log.info(obj, msg)`, for a plain object of JSON values. */
export type LineWriter = (obj: object) => void;

/**
 * The line `log.info(obj, msg)` writes, byte for byte, with `obj` serialized by one native
 * JSON.stringify instead of pino's key-by-key concatenation: for the access log, written for
 * every connection, where pino's own path cost about 7 µs and 2.5 KB of garbage a line.
 * The level, time, bindings, message key and line end are still pino's own, read from the
 * logger at each write (a reload may change its level). Taken only where pino would do
 * nothing more to the object than serialize it: no formatter, mixin, nesting, message prefix,
 * `logMethod` or write hook, a stream that wants no metadata (multistream does), no serializer
 * or redaction on any of `keys` (the only keys `obj` may have), nobody tracing pino's
 * serializing. One difference, on purpose: a lone UTF-16 surrogate in a short string is
 * escaped (`\ud800`, well-formed JSON) where pino writes it raw. Otherwise the writer is
 * `log.info` itself.
 */
export function lineWriter(log: Logger, msg: string, keys: readonly string[]): LineWriter {
  const internals = log as unknown as Record<symbol, unknown>;
  const stream = internals[S.streamSym] as { write(line: string): unknown; [k: symbol]: unknown } | undefined;
  const formatters = internals[S.formattersSym] as { log?: unknown } | undefined;
  const serializers = (internals[S.serializersSym] ?? {}) as Record<string, unknown>;
  const stringifiers = (internals[S.stringifiersSym] ?? {}) as Record<string | symbol, unknown>;
  const hooks = internals[S.hooksSym] as { streamWrite?: unknown; logMethod?: unknown } | undefined;
  const plain =
    stream !== undefined &&
    typeof stream.write === 'function' &&
    stream[S.needsMetadataGsym] !== true &&
    formatters?.log === undefined &&
    !internals[S.mixinSym] &&
    !internals[S.nestedKeySym] &&
    (MSG_PREFIX === undefined || typeof internals[MSG_PREFIX] !== 'string') &&
    hooks?.streamWrite === undefined &&
    hooks?.logMethod === undefined &&
    typeof log.levels.values['info'] === 'number' &&
    stringifiers[S.wildcardFirstSym] === undefined &&
    keys.every((k) => serializers[k] === undefined && stringifiers[k] === undefined) &&
    typeof internals[S.messageKeySym] === 'string' &&
    typeof internals[S.endSym] === 'string' &&
    typeof internals[S.timeSym] === 'function';
  if (!plain) return (obj) => log.info(obj, msg);
  const info = log.levels.values['info']!;
  const tail = `,${JSON.stringify(internals[S.messageKeySym])}:${JSON.stringify(msg)}${internals[S.endSym] as string}`;
  const time = internals[S.timeSym] as () => string;
  return (obj) => {
    if (!log.isLevelEnabled('info')) return;
    // Someone traces pino's serializing (its diagnostics channel): it sees pino's own path.
    if (hasSubscribers(AS_JSON_TRACE)) return log.info(obj, msg);
    const json = JSON.stringify(obj);
    const props = json.length > 2 ? `,${json.slice(1, -1)}` : '';
    const head = (internals[S.lsCacheSym] as Record<number, string>)[info]!;
    stream.write(head + time.call(log) + (internals[S.chindingsSym] as string) + props + tail);
  };
}

/** How long a stopping process waits for its last lines to be written before it exits anyway. */
const LAST_FLUSH_MS = 1_000;

/**
 * Writes the pending lines before a normal exit, asynchronously. pino's own flush at exit is
 * synchronous, and sonic-boom retries a failed synchronous write forever, whatever the error:
 * with nobody reading stdout any more (EPIPE: the log collector died, `socksgate | head`), the
 * process never exited. An asynchronous write that fails with EPIPE has pino drop the stream's
 * output instead, and the flush at exit then has nothing to write. Bounded: a reader that is
 * there but does not read leaves the rest to that flush, as before.
 */
export async function flushLog(log: Logger): Promise<void> {
  const flushed = (flush: (cb: () => void) => void): Promise<void> =>
    new Promise((resolve) => {
      try {
        flush(() => resolve());
      } catch {
        resolve(); // a stream already closed: nothing left to write
      }
    });
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, LAST_FLUSH_MS)));
  // Under pino-pretty the last lines are still in its transform when pino's flush returns, and
  // reach stdout's stream a few turns later: flushed then, not left to the exit's synchronous
  // flush, which would retry a broken pipe for ever. Rounds, each after the loop has turned.
  const all = (async (): Promise<void> => {
    for (let round = 0; round < FLUSH_ROUNDS; round++) {
      await flushed((cb) => log.flush(cb));
      await new Promise((resolve) => setTimeout(resolve, FLUSH_ROUND_MS));
      await Promise.all([...stdoutStreams].map((s) => flushed((cb) => s.flush(cb))));
    }
  })();
  await Promise.race([all, late]);
  clearTimeout(timer);
}

/** flushLog's rounds: the pretty transform passes a line on within a turn or two of the loop. */
const FLUSH_ROUNDS = 3;
const FLUSH_ROUND_MS = 10;

/** A logger that drops everything: for tests and library use without output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
