// What the process does when an error escaped every handler: after an uncaught exception
// its state is unknown (a half-updated counter, a socket nobody owns), so it is not kept
// running. The error is logged and counted, the listeners stop, open connections get a
// short drain, and the process exits non-zero for its supervisor to restart it.

import type { Logger } from 'pino';
import type { Gateway } from './gateway.js';
import type { Metrics } from './observe/metrics.js';

/** Drain after an unexpected error: short whatever `drain_timeout` says; the state is suspect. */
export const UNEXPECTED_DRAIN_MS = 3_000;
/** EX_SOFTWARE (sysexits.h): an internal software error. */
export const EXIT_UNEXPECTED = 70;

/**
 * Installs the process-wide handlers. `gateway` is read when an error arrives (it may not
 * exist yet during start-up). A second error while stopping is logged and counted only.
 * `lastWords` runs after the drain, before the exit (a cluster worker sends its counters,
 * this error's included, to its primary); the exit does not wait past its deadline for it.
 */
export function exitOnUnexpected(log: Logger, metrics: Metrics, gateway: () => Gateway | undefined, lastWords: () => Promise<void> | undefined = () => undefined): void {
  let stopping = false;
  const onError = (err: unknown, origin: string): void => {
    metrics.unexpectedErrors.inc();
    log.fatal({ err, origin }, 'unexpected error; stopping so that the supervisor restarts the gateway');
    if (stopping) return;
    stopping = true;
    const exit = (): void => log.flush(() => process.exit(EXIT_UNEXPECTED));
    // close() stops accepting at once; if a SIGTERM drain is already running, this bounds it.
    setTimeout(exit, UNEXPECTED_DRAIN_MS + 1_000);
    void Promise.resolve(gateway()?.close(UNEXPECTED_DRAIN_MS))
      .catch((e: unknown) => log.error({ err: e }, 'error while stopping'))
      .then(lastWords)
      .catch(() => {})
      .finally(exit);
  };
  process.on('uncaughtException', (err) => onError(err, 'uncaughtException'));
  process.on('unhandledRejection', (reason) => onError(reason, 'unhandledRejection'));
}
