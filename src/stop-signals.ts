// SIGTERM and SIGINT (PRODUCT.md "Command line"): the first stops accepting and drains; a
// second one, of either kind, stops at once. A `docker stop` after a Ctrl-C is a second signal.

/** Resolves with the first stop signal's name; from then on, either signal runs `now`. */
export function stopSignals(now: (signal: string) => void): Promise<string> {
  return new Promise((resolve) => {
    const first = (signal: string): void => {
      process.off('SIGTERM', onTerm);
      process.off('SIGINT', onInt);
      process.once('SIGTERM', () => now('SIGTERM'));
      process.once('SIGINT', () => now('SIGINT'));
      resolve(signal);
    };
    const onTerm = (): void => first('SIGTERM');
    const onInt = (): void => first('SIGINT');
    process.once('SIGTERM', onTerm);
    process.once('SIGINT', onInt);
  });
}

/** Exit code of a process cut short by a second signal. */
export const EXIT_STOPPED_AT_ONCE = 1;
