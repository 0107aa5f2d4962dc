// A pool's member as the pool holds it: built from its spec and its record, what commands it
// can carry, and the connections handed out through it (counted in its record's `active`).

import type { Command } from '../config/types.js';
import type { MemberHealth } from './health.js';
import type { MemberState } from './member-state.js';
import type { Pickable } from './pickable.js';
import { memberHash } from './strategies.js';
import { holdOne } from './stats.js';
import type { Connection, MemberSpec, Outbound } from './types.js';

export interface Member extends Pickable {
  readonly outbound: Outbound;
  /** Health and counts, shared with the pool this one replaces or is replaced by. */
  readonly state: MemberState;
  readonly health: MemberHealth;
  readonly tags: Readonly<Record<string, string>>;
  readonly placeholders: ReadonlySet<string>;
}

/** The members a command can go through (a chained member carries no UDP); undefined: any. */
export const CARRIES: Readonly<Record<Command, ((m: Member) => boolean) | undefined>> = {
  connect: undefined,
  udp: (m) => m.outbound.openUdp !== undefined,
  bind: (m) => m.outbound.bind !== undefined,
};

/** The member `spec` configures, keeping its health and counts in `state`. */
export function poolMember(spec: MemberSpec, state: MemberState): Member {
  return {
    name: spec.outbound.name,
    hash: memberHash(spec.outbound.name),
    weight: spec.weight > 0 ? spec.weight : 1,
    tags: spec.tags,
    placeholders: new Set(spec.placeholders),
    outbound: spec.outbound,
    state,
    health: state.health,
    get latency() {
      return state.health.latency;
    },
    get attempts() {
      return state.attempts;
    },
    get triedAt() {
      return state.triedAt;
    },
    get measuredAt() {
      return state.health.measuredAt;
    },
    load() {
      return state.active + state.inFlight;
    },
  };
}

/** A member as a pool takes it: weight 1 and no tags unless given, known by its name alone. */
export function memberSpec(outbound: Outbound, weight = 1, tags: Readonly<Record<string, string>> = {}): MemberSpec {
  return { outbound, endpoint: outbound.name, weight, tags };
}

export function handOut(m: Member, conn: Connection): Connection {
  const letGo = holdOne(m.state);
  return {
    ...conn,
    // This pool's member, which its stats and bans know, not the member of a pool the member is chained through.
    member: m.name,
    release: () => {
      if (letGo()) conn.release?.();
    },
  };
}
