// What a pool keeps about each member beyond its configuration, and what it hands on at a
// reload: the new pool takes over the same records, so connections opened before the reload
// are released into the counts the new pool balances on, counters never start again at zero,
// and rotation goes on from where it was.

import { MemberHealth } from './health.js';

export class MemberState {
  /** What the member dials through (MemberSpec.endpoint) when this record was made. */
  readonly endpoint: string;
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

  constructor(endpoint: string) {
    this.endpoint = endpoint;
  }
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

/**
 * Each member's record from `memory` (by name), or a fresh one. A name is not enough: a named
 * upstream keeps its name when its host, port, credentials or chain change, and what was
 * learnt of the old proxy (an ejection, a latency) says nothing of the new one.
 */
export function takeOver(members: readonly { name: string; endpoint: string }[], memory: PoolMemory | undefined): MemberState[] {
  return members.map(({ name, endpoint }) => {
    const known = memory?.states.get(name);
    return known?.endpoint === endpoint ? known : new MemberState(endpoint);
  });
}
