// Per-upstream counters for metrics: read with `stats()`, never reset; and the holding of an
// open connection, BIND or association in them, released once.

import type { Command } from '../config/types.js';
import { OutOfDescriptorsError, type GatewayError } from '../errors.js';
import type { SessionParams } from '../protocol/username.js';
import { AbortedError } from './deadline.js';
import type { PoolMemory } from './member-state.js';
import type { UpstreamState } from './upstream-state.js';
import type { Destination, Outbound } from './types.js';

export interface UpstreamStats {
  name: string;
  /**
   * connect() calls, BINDs and UDP associations asked for, less those withdrawn (see `countFailed`),
   * each counted once it ends: one still in progress may yet be withdrawn, and a counter
   * (socksgate_upstream_attempts_total) must never go down.
   */
  attempts: number;
  /** Attempts that did not give a connection (or a BIND's listener, or an association). */
  failures: number;
  /** Connections handed out and not yet released, UDP associations and BINDs included. */
  active: number;
  /** In rotation: not failing (a lone upstream), neither ejected nor banned (a pool member). */
  healthy: boolean;
  /** Connect latency (ms): a moving average of successful connects, BINDs and associations (a pool member's health checks too); undefined until measured. */
  latencyMs?: number;
}

export interface MemberStats extends UpstreamStats {
  pool: string;
  consecutiveFailures: number;
  /** Milliseconds until an ejected member gets a trial; 0 when healthy or due. */
  ejectedForMs: number;
  /** Epoch ms an operator's ban lasts until; 0 when not banned. */
  bannedUntil: number;
}

/**
 * An attempt that failed with `err`, in `counts`: a failure of the upstream, or, when it ended
 * for no reason of the upstream's, taken back out of its attempts: its caller gave up (a client
 * gone, a connection killed), or the gateway had no file descriptor for its own socket.
 */
export function countFailed(counts: { attempts: number; failures: number }, err: unknown): void {
  if (err instanceof AbortedError || err instanceof OutOfDescriptorsError) counts.attempts--;
  else counts.failures++;
}

/** Weight of a new connect's latency in an upstream's moving average: recent connects count most. */
export const LATENCY_ALPHA = 0.3;

/** `latest` folded into the moving average `average` (undefined before the first measure). */
export function movingLatency(average: number | undefined, latest: number): number {
  return average === undefined ? latest : average + LATENCY_ALPHA * (latest - average);
}

/** Something whose open count is `active`: a pool member's record, a lone upstream's counters. */
export interface ActiveCount {
  active: number;
}

/** A BIND or a UDP channel as it is held open: closed by its user, or ended by its upstream. */
export interface HeldHandle {
  close(): void;
  onEnd?(listener: () => void): void;
}

/** One more open connection in `count`, until the returned function first runs (it says whether that was now). */
export function holdOne(count: ActiveCount): () => boolean {
  count.active++;
  let released = false;
  return () => {
    if (released) return false;
    released = true;
    count.active--;
    return true;
  };
}

/**
 * A UDP association or a BIND holds a connection as a relayed connection does: counted in
 * `active` until closed, once. The handle is fresh per call, so its own `close` is wrapped in
 * place (getters such as a BIND's `listening` stay as they are). A handle its upstream ends is
 * no longer held, whether or not its user ever calls `close`.
 */
export function heldOpen<T extends HeldHandle>(count: ActiveCount, handle: T): T {
  const letGo = holdOne(count);
  const close = handle.close.bind(handle);
  handle.close = () => {
    if (letGo()) close();
  };
  handle.onEnd?.(() => handle.close());
  return handle;
}

/** A socks5 upstream (or chain end). */
export interface UpstreamOutbound extends Outbound {
  stats(): UpstreamStats;
  /** Its record, for the upstream that replaces this one on reload when unchanged (upstream-state.ts). */
  memory(): UpstreamState;
}

export interface PoolOutbound extends Outbound {
  /**
   * The member that would be chosen now for `sessionKey` with the session's parameters (tag
   * filters, lifetime) among those that can carry `command` (default connect) and be asked for
   * `dest`, as a request's first attempt would choose, without side effects; undefined when
   * none is usable or matches. `asHop`: as a chain's hop (an upstream's `via`) picks, among
   * every member whatever the session's tag filters (those are for the route's own pool).
   */
  pick(sessionKey: string, params?: SessionParams, command?: Command, dest?: Destination, asHop?: boolean): string | undefined;
  /**
   * What a request gets when pick() finds no member, as the pool would refuse it: the session's
   * tag filters leave none (0x04), none they leave can carry the command (0x07), or none is
   * usable now.
   */
  refusal(params?: SessionParams, command?: Command, asHop?: boolean): GatewayError;
  stats(): MemberStats[];
  /** Its members' records and its rotation, for the pool that replaces this one on reload. */
  memory(): PoolMemory;
  /** Takes a member out of rotation for `forMs` (new requests at once); false when no such member. */
  ban(member: string, forMs: number): boolean;
  /** Lifts a ban; false when no such member. */
  unban(member: string): boolean;
}

export function isPoolOutbound(o: Outbound): o is PoolOutbound {
  return 'pick' in o && typeof o.pick === 'function' && 'stats' in o;
}

export function isUpstreamOutbound(o: Outbound): o is UpstreamOutbound {
  return !isPoolOutbound(o) && 'stats' in o && typeof o.stats === 'function';
}

/** Everything the metrics layer needs from a built outbound map, in one pass. */
export function collectStats(outbounds: ReadonlyMap<string, Outbound>): { upstreams: UpstreamStats[]; members: MemberStats[] } {
  const upstreams: UpstreamStats[] = [];
  const members: MemberStats[] = [];
  for (const o of outbounds.values()) {
    if (isPoolOutbound(o)) members.push(...o.stats());
    else if (isUpstreamOutbound(o)) upstreams.push(o.stats());
  }
  return { upstreams, members };
}
