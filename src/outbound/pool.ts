// A pool of upstreams: one member per request by strategy, unhealthy members skipped,
// a failed member replaced by another before the client gets its reply (bounded).

import type { Logger } from 'pino';
import type { Command, PoolConfig } from '../config/types.js';
import { ConnectTimeoutError, GatewayError, NameNotResolvedError, OutOfDescriptorsError } from '../errors.js';
import { filterParams, lifetimeMs, type SessionParams } from '../protocol/username.js';
import { createHealthChecks, DEFAULT_HEALTH_POLICY, type HealthPolicy, type Transition } from './health.js';
import { AbortedError } from './deadline.js';
import { takeOver, type PoolMemory } from './member-state.js';
import { ambiguous, NoMemberCarriesError, NoMemberMatchesError, notSayable, PoolExhaustedError, retryable } from './pool-errors.js';
import { CARRIES, handOut, poolMember, type Member } from './pool-member.js';
import { createViews, type View } from './pool-views.js';
import { CredentialsTooLongError } from './credentials.js';
import { answeredAboutDestination, firstFailedHop, isUpstreamFault, UpstreamAuthError } from './socks5-errors.js';
import { countFailed, heldOpen, movingLatency, type MemberStats, type PoolOutbound } from './stats.js';
import { FASTEST_STALE_MS } from './strategies.js';
import type { BindHandle, Connection, Destination, MemberSpec, OutboundContext, UdpChannel } from './types.js';

export interface PoolDeps {
  /** Built already, one per member, each outbound named by its display name (upstream name or URL without password). */
  members: MemberSpec[];
  log: Logger;
  /** Clock for ejection backoff (ms). */
  now?: () => number;
  policy?: HealthPolicy;
  /** The records of the pool this one replaces (a reload): its members' health and counts, its rotation. */
  inherit?: PoolMemory;
  /** Where a new pool's rotation starts, as a fraction of the way round its members (see BuildDeps.rotationStart); 0 by default. */
  rotationStart?: number;
}

/** The member's username or password holds a `{NAME}` the request gave a value for (`{user}` is a configured name, not the client's choice). */
function fillsClientValues(m: Member, params: SessionParams | undefined): boolean {
  if (params === undefined) return false;
  for (const k of m.placeholders) if (k !== 'user' && params[k] !== undefined && params[k] !== '') return true;
  return false;
}

/** A failure's message for the log (GatewayErrors name no credentials); undefined when there is none. */
function reasonOf(err: unknown): string | undefined {
  return err instanceof Error ? err.message : err === undefined ? undefined : String(err);
}

export function createPoolOutbound(name: string, cfg: PoolConfig, deps: PoolDeps): PoolOutbound {
  const now = deps.now ?? Date.now;
  const policy = deps.policy ?? { ...DEFAULT_HEALTH_POLICY, ejectAfter: cfg.ban_after };
  // Every line of the pool's own names it once: its logger carries the key.
  const log = deps.log.child({ pool: name });
  const maxAttempts = Math.max(1, cfg.max_attempts ?? 3);
  // A reload keeps what the old pool learnt and counts: a dead member stays ejected, its
  // backoff running, its open connections counted; the new config's settings apply from now
  // on. Taken here, outside any closure: none of the pool's may reach `deps.inherit`.
  const states = takeOver(deps.members.map((spec) => ({ name: spec.outbound.name, endpoint: spec.endpoint })), deps.inherit);
  /** Picks made so far (the old pool's included): where each new rotation starts. */
  let turns = deps.inherit?.turns ?? Math.floor((deps.rotationStart ?? 0) * deps.members.length);
  const members: Member[] = deps.members.map((spec, i) => poolMember(spec, states[i]!));
  const byName = new Map(members.map((m) => [m.name, m]));
  /** Some member cannot be asked for some destinations (a socks4 one): only then are they looked at per request. */
  const partial = members.some((m) => m.outbound.carries !== undefined);

  /**
   * The members a request can go through: those that carry `command` and, when some of the
   * view's can be asked for `dest`, only those. A member that cannot be asked for it (IPv6 to
   * socks4) would fail before sending anything and spend one of `max_attempts`; when no member
   * can, they are tried all the same and the client gets their 0x08.
   */
  function carrying(view: View, command: Command, dest: Destination | undefined): ((m: Member) => boolean) | undefined {
    const forCommand = CARRIES[command];
    if (!partial || dest === undefined) return forCommand;
    const forDest = (m: Member): boolean => (forCommand === undefined || forCommand(m)) && m.outbound.carries?.(dest) !== false;
    return view.members.some(forDest) ? forDest : forCommand;
  }
  const { all, viewFor } = createViews(members, cfg.strategy, turns);
  // Inherited health may already be all down: the old pool said so, this one must not miss the recovery.
  let allDown = members.length > 0 && members.every((m) => !m.health.healthy);

  /**
   * Logs transitions only: a dead pool costs one line, not one per request. An ejection says
   * the failure that made it (a health check's is logged nowhere else: no request carried it).
   */
  function note(m: Member, t: Transition, why?: unknown): void {
    if (t === undefined) return;
    if (t === 'ejected') log.warn({ member: m.name, failures: m.health.consecutiveFailures, error: reasonOf(why) }, 'pool member ejected');
    else log.info({ member: m.name }, 'pool member re-admitted');
    const down = members.every((x) => !x.health.healthy);
    if (down === allDown) return;
    allDown = down;
    if (down) log.warn({ members: members.length }, 'pool has no healthy member');
    else log.info('pool has a healthy member again');
  }

  /** A connect's latency: averaged with the recent ones, or in place of a figure no longer recent. */
  function measured(m: Member, ms: number): void {
    const h = m.health;
    const t = now();
    h.latency = movingLatency(t - h.measuredAt >= FASTEST_STALE_MS ? undefined : h.latency, ms);
    h.measuredAt = t;
  }

  function settle(m: Member, err: unknown, begunHealthy: boolean, params: SessionParams | undefined): void {
    // A login refused with the client's own values filled in ({session}, {country}) may be a
    // refusal of those values: any client could otherwise eject the member for everyone with
    // a parameter its provider does not know. The member's own credentials are judged by the
    // health check, which fills in none.
    // So may a hop of the member's chain, whose credentials are filled in too: the login a hop
    // refused, or one too long to send, is judged as the member's own would be.
    const first = firstFailedHop(err);
    if (first instanceof UpstreamAuthError && fillsClientValues(m, params)) m.health.neutral(begunHealthy);
    else if (first instanceof CredentialsTooLongError) m.health.neutral(begunHealthy);
    else if (isUpstreamFault(err) || err instanceof PoolExhaustedError) note(m, m.health.failure(now(), policy, begunHealthy), err);
    else if (answeredAboutDestination(err)) note(m, m.health.success());
    else m.health.neutral(begunHealthy); // the client left, local DNS, or an ambiguous 0x01
  }

  // What `usable` reads: set right before each (synchronous) choice, so no closure per pick.
  let pickNow = 0;
  let pickTried: ReadonlySet<Member> | undefined;
  let pickCan: ((m: Member) => boolean) | undefined;
  let pickHealthy = false;
  const usable = (m: Member): boolean =>
    m.health.usable(pickNow) && (!pickHealthy || m.health.healthy) && !pickTried?.has(m) && (pickCan === undefined || pickCan(m));

  /** `healthy`: only members in rotation, no ejected member due for its trial. */
  function choose(
    view: View,
    key: string,
    params: SessionParams | undefined,
    tried: ReadonlySet<Member> | undefined,
    commit: boolean,
    can?: (m: Member) => boolean,
    healthy = false,
  ): Member | undefined {
    pickNow = now();
    pickTried = tried;
    pickCan = can;
    pickHealthy = healthy;
    const m = view.strategy.choose(usable, key, lifetimeMs(params) ?? cfg.sticky_lifetime, pickNow, commit);
    pickTried = undefined;
    pickCan = undefined;
    pickHealthy = false;
    if (m && commit) {
      turns++;
      m.state.triedAt = pickNow;
    }
    return m;
  }

  /**
   * The members a request may go through, or its refusal before any is tried: the session's
   * tag filters leave none, or none they leave could ever carry the command (healthy or not:
   * not a dead pool). As a hop, every member: a filter no entry proxy is tagged for would
   * refuse the chain, and be counted against the route's member, which a client's parameter
   * must not eject.
   */
  function viewOrRefusal(params: SessionParams | undefined, command: Command, asHop: boolean): View | GatewayError {
    const view = asHop ? all : viewFor(params, turns);
    if (!view) return new NoMemberMatchesError(name, filterParams(params));
    const forCommand = CARRIES[command];
    if (forCommand !== undefined && !view.members.some(forCommand)) return new NoMemberCarriesError(name, command, filterParams(params));
    return view;
  }

  /** Runs `op` on one member after another (strategy order, never one twice) until one succeeds. */
  async function attempt<T>(ctx: OutboundContext, op: (m: Member) => Promise<T>, command: Command, dest: Destination | undefined): Promise<{ m: Member; value: T }> {
    const view = viewOrRefusal(ctx.params, command, ctx.viaHop === true);
    if (view instanceof GatewayError) throw view;
    const can = carrying(view, command, dest);
    let tried: Set<Member> | undefined;
    /** Members that answered this request with 0x01, whether each was begun healthy, and the answer. */
    let gaveOne: Array<[Member, boolean, unknown]> | undefined;
    let last: unknown;
    /**
     * An ejected member's trial failed: the request's other attempts go to members in rotation
     * while there are any. Members ejected together come due together, and a rotation over
     * them would spend every attempt of a request on trials while healthy members wait.
     */
    let trialFailed = false;
    for (let i = 0; i < maxAttempts; i++) {
      const m = (trialFailed ? choose(view, ctx.sessionKey, ctx.params, tried, true, can, true) : undefined) ?? choose(view, ctx.sessionKey, ctx.params, tried, true, can);
      if (!m) break;
      (tried ??= new Set()).add(m);
      ctx.member = m.name;
      const state = m.state;
      state.attempts++;
      state.inFlight++;
      const trial = m.health.begin();
      const started = performance.now();
      try {
        const value = await op(m);
        ctx.member = m.name; // a member chained through a pool hop wrote that pool's member here
        state.inFlight--;
        measured(m, performance.now() - started);
        note(m, m.health.success());
        // Another member reached the destination: the 0x01s before were their members' own failures.
        if (gaveOne) for (const [x, begunHealthy, said] of gaveOne) note(x, x.health.failure(now(), policy, begunHealthy), said);
        return { m, value };
      } catch (err) {
        ctx.member = m.name;
        state.inFlight--;
        countFailed(state, err); // not a failure of the member when not its doing (a caller gone, no descriptor)
        settle(m, err, !trial, ctx.params);
        if (trial) trialFailed = true;
        if (ambiguous(err)) (gaveOne ??= []).push([m, !trial, err]);
        last = err;
        // A reply about the destination (0x02-0x08) goes to the client as it is: another
        // member would get the same answer, and this one did its job.
        if (ctx.signal.aborted || !retryable(err, command)) throw err;
        ctx.log.debug({ pool: name, member: m.name, err: (err as Error).message }, 'pool member failed; trying another');
      }
    }
    throw last ?? new PoolExhaustedError(name);
  }

  async function connect(dest: Destination, ctx: OutboundContext): Promise<Connection> {
    const { m, value } = await attempt(ctx, (x) => x.outbound.connect(dest, ctx), 'connect', dest);
    return handOut(m, value);
  }

  /** When a health check last reached its target through some member (the pool's clock, ms). */
  let targetReachedAt = -Infinity;
  const checks = cfg.health_check
    ? createHealthChecks(members, cfg.health_check, log, (m, outcome, ms, err, said) => {
        const t = now();
        if (outcome === 'connected') {
          targetReachedAt = t;
          measured(m, ms);
          note(m, m.health.success());
          return;
        }
        // A refusal of the target (squid's 503 or 504 when the target is down) shows the member
        // alive, not the target up: it must not make other members' silence their own fault.
        // Nor is its time a connect latency (it may be the member's own timeout), as in requests.
        if (outcome === 'answered') {
          note(m, m.health.success());
          return;
        }
        // The target's name failed to resolve here (a member with remote_dns: false takes an
        // address), or the target cannot be said to it (IPv6 to a socks4 member): the member
        // was never asked, and a request failing so blames none either.
        if (err instanceof NameNotResolvedError || notSayable(err)) return;
        // Nor does a check the gateway had no socket for.
        if (err instanceof OutOfDescriptorsError) return;
        // A check given up while the member was waiting on the target, or answered 0x01, blames
        // the member or the target: only another member reaching the target lately (this round
        // or the last) says it was the member's own. A target that hangs for every member must
        // not eject them all.
        // A member's own connect_timeout shorter than the check's ends the same wait: its bare
        // ConnectTimeoutError says the member had answered and was waiting on the target.
        const aboutTarget = ambiguous(err) || (err instanceof AbortedError && err.awaitingDestination) || err instanceof ConnectTimeoutError;
        if (!aboutTarget || t - targetReachedAt <= cfg.health_check!.interval + cfg.health_check!.timeout) note(m, m.health.failure(t, policy), said ?? err);
      })
    : undefined;

  function stats(): MemberStats[] {
    const t = now();
    return members.map((m) => {
      const bannedUntil = m.health.bannedUntil(t);
      return {
        pool: name,
        name: m.name,
        attempts: m.state.attempts - m.state.inFlight, // see UpstreamStats.attempts
        failures: m.state.failures,
        active: m.state.active,
        // In rotation, as the API and the healthy gauge say: a ban takes a member out as an ejection does.
        healthy: m.health.healthy && bannedUntil === 0,
        consecutiveFailures: m.health.consecutiveFailures,
        ejectedForMs: m.health.ejectedForMs(t),
        bannedUntil,
        latencyMs: m.latency,
      };
    });
  }

  function setBan(member: string, until: number): boolean {
    const m = byName.get(member);
    if (!m) return false;
    m.health.ban(until);
    log.info({ member, until: until === 0 ? undefined : new Date(until).toISOString() }, until === 0 ? 'member ban lifted' : 'member banned');
    return true;
  }

  const pool: PoolOutbound = {
    name,
    connect,
    pick(key, params, command = 'connect', dest, asHop = false) {
      // As attempt() takes its view.
      const view = viewOrRefusal(params, command, asHop);
      return view instanceof GatewayError ? undefined : choose(view, key, params, undefined, false, carrying(view, command, dest))?.name;
    },
    refusal(params, command = 'connect', asHop = false) {
      const view = viewOrRefusal(params, command, asHop);
      return view instanceof GatewayError ? view : new PoolExhaustedError(name);
    },
    stats,
    memory: () => ({ states: new Map(members.map((m) => [m.name, m.state])), turns }),
    ban: (member, forMs) => setBan(member, now() + forMs),
    unban: (member) => setBan(member, 0),
    start() {
      checks?.start();
    },
    async close() {
      checks?.stop();
      await Promise.all(members.map((m) => m.outbound.close()));
    },
  };
  // UDP and BIND go through a member that can carry them (not a chained one), each held open
  // in the member's `active` (least-connections balances on it) until it is closed or ends.
  if (members.some((m) => m.outbound.openUdp)) {
    pool.openUdp = async (ctx: OutboundContext): Promise<UdpChannel> => {
      const { m, value } = await attempt(ctx, (x) => x.outbound.openUdp!(ctx), 'udp', undefined);
      return heldOpen(m.state, value);
    };
  }
  if (members.some((m) => m.outbound.bind)) {
    pool.bind = async (dest: Destination, ctx: OutboundContext): Promise<BindHandle> => {
      const { m, value } = await attempt(ctx, (x) => x.outbound.bind!(dest, ctx), 'bind', dest);
      return heldOpen(m.state, value);
    };
  }
  // A pool as a member of another, or as a hop: what none of its members can be asked for, it cannot.
  if (partial) pool.carries = (dest) => members.some((m) => m.outbound.carries?.(dest) !== false);
  return pool;
}
