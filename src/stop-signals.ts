// SIGTERM and SIGINT (PRODUCT.md "Command line"): the first stops accepting and drains; a
// second one, of either kind, stops at once. A `docker stop` after a Ctrl-C is a second signal;
// under npm, the same signal delivered twice within SAME_STOP_MS is one stop (a third is a second one).
//
// Taken from the moment the CLI loads (it imports this module first, before any config is
// read): a process that is PID 1 in its container ignores a signal it has no handler for, so
// a `docker stop` or a pod deletion that came while the gateway was starting was lost, and
// the gateway ran on until SIGKILL. One that arrives while starting is held and handed to
// stopSignals() once the gateway runs; a second one meanwhile stops the process at once.

/** Exit code of a process cut short by a second signal. */
export const EXIT_STOPPED_AT_ONCE = 1;

/**
 * How long a stop at once may take to cut the open connections and write their access-log
 * lines before the process exits regardless.
 */
export const CUT_MS = 2_000;

/**
 * A stop at once: the process exits 1, and at the latest `ms` from now (its log flushed
 * first), whatever it is still waiting on.
 */
export function exitStoppedAtOnce(log: { flush(done: () => void): void }, ms: number): void {
  process.exitCode = EXIT_STOPPED_AT_ONCE;
  setTimeout(() => log.flush(() => process.exit(EXIT_STOPPED_AT_ONCE)), ms).unref();
}

/**
 * Under `npm start` one stop arrives twice: a terminal's Ctrl-C signals npm and the gateway
 * together, and npm passes it on (the script execs the gateway, so that the SIGTERM a
 * supervisor sends npm reaches it). There, the same signal again this soon is that stop, not a
 * second one (a third stops at once). Run any other way, every further signal is a second one.
 */
const SAME_STOP_MS = process.env['npm_lifecycle_event'] === 'start' ? 500 : 0;

let held: NodeJS.Signals | undefined;
let handler: ((signal: NodeJS.Signals) => void) | undefined;
/** `echoed`: its copy from npm came; only one is, so another within the window is a second stop. */
let firstStop: { signal: NodeJS.Signals; at: number; echoed: boolean } | undefined;

const take = (signal: NodeJS.Signals): void => {
  const now = performance.now();
  if (firstStop === undefined) firstStop = { signal, at: now, echoed: false };
  else if (!firstStop.echoed && firstStop.signal === signal && now - firstStop.at < SAME_STOP_MS) {
    firstStop.echoed = true;
    return;
  }
  if (handler) return handler(signal);
  if (held !== undefined) process.exit(EXIT_STOPPED_AT_ONCE);
  held = signal;
};
const onTerm = (): void => take('SIGTERM');
const onInt = (): void => take('SIGINT');
process.on('SIGTERM', onTerm);
process.on('SIGINT', onInt);

/** For a command that runs no gateway: SIGTERM and SIGINT end it again, one held included. */
export function releaseStopSignals(): void {
  process.off('SIGTERM', onTerm);
  process.off('SIGINT', onInt);
  if (held !== undefined) process.kill(process.pid, held);
}

/**
 * Resolves with the first stop signal's name (at once for one held since start-up); from
 * then on, every further one runs `now`. The listeners stay installed for good: removing a
 * signal's last listener gives the signal back its default action (terminate) until one is
 * added again, and a signal landing in that gap, such as a primary's SIGTERM arriving beside
 * the terminal's SIGINT to the whole group, killed the process without its drain.
 */
export function stopSignals(now: (signal: string) => void): Promise<string> {
  return new Promise((resolve) => {
    let stopping = false;
    handler = (signal) => {
      if (stopping) return now(signal);
      stopping = true;
      resolve(signal);
    };
    if (held !== undefined) handler(held);
  });
}
