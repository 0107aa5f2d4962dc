// What every pool strategy sees of a member, and what a strategy is: the contract between
// pool.ts, strategies.ts and rendezvous.ts, kept apart so that none of them imports another
// only for its types.

export interface Pickable {
  readonly name: string;
  /** memberHash(name), for rendezvous hashing. */
  readonly hash: number;
  /** Share of traffic relative to the other members (random, sticky); > 0. */
  readonly weight: number;
  /** Relayed connections open now plus connects in flight. */
  load(): number;
  /** Moving average of connect latency (ms); undefined until measured. */
  readonly latency: number | undefined;
  /** Connects tried through the member so far (a member tried but never measured has never succeeded). */
  readonly attempts: number;
  /** When the member was last picked for a request (the pool's clock, ms; 0: never). */
  readonly triedAt: number;
  /** When `latency` was last measured, by a request or a health check (the pool's clock, ms; 0: never). */
  readonly measuredAt: number;
}

export interface Strategy<T extends Pickable> {
  /**
   * The member for session `key` among those `usable` accepts. `lifetime` (ms) bounds how
   * long a sticky session keeps its member, `now` is the wall clock (ms). `commit` false asks
   * what would be chosen without moving any cursor (for `socksgate route` and tests).
   */
  choose(usable: (m: T) => boolean, key: string, lifetime: number | undefined, now: number, commit: boolean): T | undefined;
}
