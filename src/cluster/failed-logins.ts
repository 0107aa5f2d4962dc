// The failed logins the primary passed on (limit-ledger.ts), kept while they can still count:
// a worker that starts later (a replacement) is given them, so it blocks what the instance
// blocked and counts on from where the others are (PRODUCT.md "Limits", `auth_failures`).
// Times, not a count: the worker's own throttle replays them, so windows and blocks come
// out as they did in the others.
import type { ThrottleLimits } from '../server/login-throttle.js';

/** Failures remembered in all (one message to a starting worker holds them); the address least recently failing is forgotten first. */
const MAX_FAILURES = 100_000;
/** Failures remembered per address: the newest. */
const MAX_PER_SOURCE = 1_024;

export class FailedLogins {
  /** By client address, in the order they last failed: the times (Date.now()) of its failures. */
  readonly #times = new Map<string, number[]>();
  /** The times held, over every address. */
  #count = 0;
  readonly #limits: () => ThrottleLimits;
  readonly #now: () => number;

  constructor(limits: () => ThrottleLimits, now: () => number = Date.now) {
    this.#limits = limits;
    this.#now = now;
  }

  add(source: string): void {
    const now = this.#now();
    const times = this.#fresh(this.#forget(source) ?? [], now);
    times.push(now);
    if (times.length > MAX_PER_SOURCE) times.splice(0, times.length - MAX_PER_SOURCE);
    this.#times.set(source, times); // the most recent last
    this.#count += times.length;
    while (this.#count > MAX_FAILURES) this.#forget(this.#times.keys().next().value!);
  }

  #forget(source: string): number[] | undefined {
    const times = this.#times.get(source);
    if (times === undefined) return undefined;
    this.#times.delete(source);
    this.#count -= times.length;
    return times;
  }

  /** Every failure that may still count (in a window, or in the window that began a block in force), oldest first, with its age in ms. */
  inForce(): Array<[source: string, ago: number]> {
    const now = this.#now();
    const all: Array<[string, number]> = [];
    for (const [source, times] of this.#times) {
      const fresh = this.#fresh(times, now);
      if (fresh.length < times.length) {
        this.#count -= times.length - fresh.length;
        if (fresh.length === 0) this.#times.delete(source);
        else this.#times.set(source, fresh);
      }
      for (const at of fresh) all.push([source, now - at]);
    }
    return all.sort((a, b) => b[1] - a[1]);
  }

  /** A failure older than window + block neither counts in a window nor began a block still in force. */
  #fresh(times: number[], now: number): number[] {
    const { window, block } = this.#limits();
    const since = now - window - block;
    const first = times.findIndex((at) => at > since);
    return first < 0 ? [] : first === 0 ? times : times.slice(first);
  }
}
