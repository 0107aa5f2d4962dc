// What a pool keeps about each member beyond its configuration, and what it hands on at a
// reload: the new pool takes over the same records, so connections opened before the reload
// are released into the counts the new pool balances on, counters never start again at zero,
// and rotation goes on from where it was.

import { MemberHealth } from './health.js';

export class MemberState {
  readonly health = new MemberHealth();
  /** Relayed connections open now through the member. */
  active = 0;
  /** Connects in progress. */
  inFlight = 0;
  /** Connects tried through the member, and of those, the ones that failed. */
  attempts = 0;
  failures = 0;
  /** When a request last picked the member (the pool's clock, ms). */
  triedAt = 0;
}

/** A pool's records, read by the pool that replaces it. */
export interface PoolMemory {
  member(name: string): MemberState | undefined;
  /** Picks the pool has made: where a new rotation starts. */
  readonly turns: number;
}
