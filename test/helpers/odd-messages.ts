// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): messages that are no message of socksgate's, or one with its
// fields missing or of the wrong type, go over every worker's IPC channel both ways, as
// `worker.send(null)` or a stray library's message would. A worker sends them just before it
// says it serves; the primary sends them to a worker once it serves. The product never loads it.
import type { Serializable } from 'node:child_process';
import cluster from 'node:cluster';

/** Not socksgate's messages at all. */
const STRAY: unknown[] = [null, 0, 7, 'text', true, [], [1, 'a'], {}, { socksgate: 5 }, { socksgate: null }, { socksgate: ['reload'] }];

/** The primary's messages to a worker, their fields missing or wrong (a `cut` is a cut whatever it holds). */
const TO_WORKER: unknown[] = [
  ...STRAY,
  ...['reload', 'config', 'taken', 'holders', 'share', 'login-failed', 'login-failures', 'api', 'metrics'].map((socksgate) => ({ socksgate })),
  { socksgate: 'reload', why: { toString: 1 }, seq: 'one' },
  { socksgate: 'login-failures', failures: [null, 5, ['127.0.0.9'], ['127.0.0.9', -1]] },
  { socksgate: 'share', user: 'alice', holders: 'two' },
];

/** A worker's messages to its primary, likewise (a `ready` is the worker's own, sent after these). */
const TO_PRIMARY: unknown[] = [
  ...STRAY,
  ...['config?', 'applied', 'reloaded', 'stopping', 'take', 'give', 'adopt', 'login-failed', 'holders?', 'hold', 'api-answer', 'metrics-answer'].map((socksgate) => ({ socksgate })),
  { socksgate: 'applied', apiToken: 5, logLevel: 'constructor', text: 7 },
  { socksgate: 'reloaded', seq: 1, trigger: { toString: 1 }, outcome: { result: 'ok', config: 'x' } },
  { socksgate: 'stopping', metrics: [5, null, { name: 'x' }] },
  { socksgate: 'take', id: 'one', key: 5, max: null },
  { socksgate: 'hold', user: ['alice'], held: 'yes' },
];

if (cluster.isWorker && process.send) {
  const send = process.send.bind(process) as (...args: unknown[]) => boolean;
  process.send = ((...args: unknown[]): boolean => {
    const msg = args[0] as { socksgate?: unknown } | null;
    if (msg?.socksgate === 'ready') for (const odd of TO_PRIMARY) send(odd);
    return send(...args);
  }) as typeof process.send;
} else if (cluster.isPrimary) {
  cluster.on('message', (w, msg: { socksgate?: unknown } | null) => {
    if (msg?.socksgate === 'ready') for (const odd of TO_WORKER) w.send(odd as Serializable);
  });
}
