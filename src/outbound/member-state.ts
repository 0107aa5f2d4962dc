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

/**
 * A pool's records, read by the pool that replaces it: plain data, so the new pool holds the
 * records and nothing of the old pool (a closure would keep it, and each pool the one before).
 */
export interface PoolMemory {
  readonly states: ReadonlyMap<string, MemberState>;
  /** Picks the pool has made: where a new rotation starts. */
  readonly turns: number;
}

/** Each member's record from `memory` (by name), or a fresh one. */
export function takeOver(names: readonly string[], memory: PoolMemory | undefined): MemberState[] {
  return names.map((name) => memory?.states.get(name) ?? new MemberState());
}
