// SIGTERM and SIGINT (PRODUCT.md "Command line"): the first stops accepting and drains; a
// second one, of either kind, stops at once. A `docker stop` after a Ctrl-C is a second signal.

/**
 * Resolves with the first stop signal's name; from then on, every further one runs `now`.
 * The listeners stay installed for good: removing a signal's last listener gives the signal
 * back its default action (terminate) until one is added again, and a signal landing in that
 * gap, such as a primary's SIGTERM arriving beside the terminal's SIGINT to the whole group,
 * killed the process without its drain.
 */
export function stopSignals(now: (signal: string) => void): Promise<string> {
  return new Promise((resolve) => {
    let stopping = false;
    const take = (signal: string): void => {
      if (stopping) return now(signal);
      stopping = true;
      resolve(signal);
    };
    process.on('SIGTERM', () => take('SIGTERM'));
    process.on('SIGINT', () => take('SIGINT'));
  });
}

/** Exit code of a process cut short by a second signal. */
export const EXIT_STOPPED_AT_ONCE = 1;
