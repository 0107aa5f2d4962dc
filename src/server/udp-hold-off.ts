// How long a client association waits before it opens another upstream association, after
// the upstream ended the last ones before they lived: a broken or hostile upstream that closes
// every one at once would otherwise be reconnected to for each datagram, at the client's rate.

/** An upstream association that ends sooner than this after it opened did not live. */
export const LIVED_MS = 1_000;
/** The hold-off after the second such end in a row; it doubles with each further one. */
const FIRST_HOLD_OFF_MS = 250;

/** Per key (an outbound): how many of its associations in a row ended before they lived. */
export class UdpHoldOff<K> {
  readonly #streaks = new Map<K, number>();
  readonly #maxMs: number;

  constructor(maxMs: number) {
    this.#maxMs = maxMs;
  }

  /**
   * An association of `key` ended after `livedMs`: the ms before the next may open, 0 for at once.
   * One that lived resets the count; the first that did not is an upstream restarting, not held off.
   */
  ended(key: K, livedMs: number): number {
    if (livedMs >= LIVED_MS) {
      this.#streaks.delete(key);
      return 0;
    }
    const streak = (this.#streaks.get(key) ?? 0) + 1;
    this.#streaks.set(key, streak);
    return streak < 2 ? 0 : Math.min(FIRST_HOLD_OFF_MS * 2 ** Math.min(streak - 2, 16), this.#maxMs);
  }

  /** Forgets every key `keep` rejects (a replaced config's outbounds). */
  retain(keep: (key: K) => boolean): void {
    for (const key of this.#streaks.keys()) if (!keep(key)) this.#streaks.delete(key);
  }

  clear(): void {
    this.#streaks.clear();
  }
}
