// Where one association's datagrams go: the router's decision per destination (cached for
// the association, bounded) and one channel per outbound, opened on first use. A destination
// is routed on the config live when its first datagram comes: a reload reaches the new
// destinations of an association (its existing flows keep their route, as relays do). The
// channel is the outbound's of that config, `direct` included: a new destination is checked
// against the reloaded egress guard and resolved by the reloaded resolver. A channel of a
// replaced config closes once no remembered destination uses it, or once its destinations
// have all been quiet for the association's idle timeout: reloads do not pile up channels
// (and upstream associations) for as long as the association lives.

import type { ResolvedAddress } from '../dns/types.js';
import { Rep, RuleBlockedError, toRep } from '../errors.js';
import type { ByteBudget } from '../outbound/byte-budget.js';
import type { AddressSet } from '../outbound/egress.js';
import type { Destination, Outbound, UdpChannel } from '../outbound/types.js';
import type { CommandContext, Snapshot } from './context.js';
import { outboundContext } from './outbound-context.js';
import { route } from './route.js';
import { UdpHoldOff } from './udp-hold-off.js';

/** A datagram is either handed to a channel or dropped for a reason (a metrics label). */
export type UdpTarget =
  | { kind: 'channel'; channel: UdpChannel; egressLift?: AddressSet; resolved?: readonly ResolvedAddress[]; usedAt: number }
  | { kind: 'drop'; reason: string; retryAt?: number };

type OpenUdp = NonNullable<Outbound['openUdp']>;

export interface UdpRoutesOptions {
  /** Destinations whose decision is remembered; the oldest is forgotten beyond this. */
  maxDestinations: number;
  /** After an outbound failed to open its channel, datagrams for it are dropped this long. */
  retryAfterMs: number;
  /**
   * A flow quiet this long (ms, no datagram either way; 0 = never) is no flow under way: after a
   * reload its destination is routed anew and a replaced config's channel it held closes.
   */
  flowIdleMs: number;
  onAnswer(from: Destination, payload: Buffer): void;
  /** `bytes`: a channel's, for a client datagram it took and never sent (see UdpChannel.onDrop). */
  onDrop(reason: string, direction: 'up' | 'down', bytes?: number): void;
  /** The association's byte budget: its channels hold their queued datagrams in it. */
  budget: ByteBudget;
}

/** A channel; undefined when it failed to open, 'unsupported' when the outbound cannot carry UDP (both asked again later). */
type Opened = UdpChannel | undefined | 'unsupported';
/** `retryAt`: a channel that failed to open, or is held back (see #ended), is asked for again from then on. */
type ChannelState = { channel: Promise<Opened>; retryAt?: number };
/**
 * An open channel: whose it is (the decision's action, the outbound a config built, the pool
 * member that carries it) and how many remembered destinations use it.
 */
type OpenChannel = { action: string; outbound: Outbound; member: string | undefined; users: number; openedAt: number; answeredAt: number };

/**
 * Destinations being routed at once (a `cidrs` rule resolves each name first): a datagram
 * for one more new destination is dropped as queue_full, as a name lookup past its bound is.
 */
const MAX_ROUTING = 256;

export class UdpRoutes {
  readonly #ctx: CommandContext;
  readonly #opts: UdpRoutesOptions;
  readonly #decisions = new Map<string, UdpTarget | Promise<UdpTarget>>();
  /** A channel per outbound object: each config builds its own, `direct` included. */
  readonly #channels = new Map<Outbound, ChannelState>();
  /** Channels open now; `users` counts the settled decisions in #decisions that name each. */
  readonly #open = new Map<UdpChannel, OpenChannel>();
  /** The config the last new destination was routed on: when it changes, channels may have gone stale. */
  #routedOn: Snapshot;
  /** The last destination asked for and its settled target, while #decisions still holds it. */
  #lastDest: Destination | undefined;
  #lastTarget: UdpTarget | undefined;
  #closed = false;
  /** Destinations whose route is being decided now. */
  #routing = 0;
  /** Per outbound: how long a new association waits after its last ones ended before they lived. */
  readonly #holdOff: UdpHoldOff<Outbound>;
  /** The route of the last destination given a channel: what the access line names. */
  #carried: { rule: string; outbound: string; member: string | undefined } | undefined;

  constructor(ctx: CommandContext, opts: UdpRoutesOptions) {
    this.#ctx = ctx;
    this.#opts = opts;
    this.#routedOn = ctx.current();
    this.#holdOff = new UdpHoldOff(opts.retryAfterMs);
  }

  /** The target for `dest`: synchronous once known, a promise while routing or opening. */
  target(dest: Destination): UdpTarget | Promise<UdpTarget> {
    // The association hands the same object for a run of datagrams with one header.
    if (dest === this.#lastDest) return this.#lastTarget!;
    const key = `${dest.host.toLowerCase()}#${dest.port}`;
    const known = this.#decisions.get(key);
    if (known !== undefined && !isExpired(known)) {
      if (!(known instanceof Promise) && !(known.kind === 'drop' && known.retryAt !== undefined)) {
        this.#lastDest = dest;
        this.#lastTarget = known;
      }
      return known;
    }
    this.#lastDest = undefined;
    if (this.#routing >= MAX_ROUTING) return QUEUE_FULL;
    if (this.#decisions.size >= this.#opts.maxDestinations) this.#forgetOldest();
    this.#routing++;
    const pending = this.#resolve(dest).then((t) => {
      this.#routing--;
      // Keep the settled value so later datagrams skip the promise, unless its channel
      // was forgotten meanwhile (the upstream ended it, or a reload left it unused): then
      // the next datagram is routed anew.
      if (this.#decisions.get(key) !== pending) return t;
      if (t.kind === 'channel') {
        const open = this.#open.get(t.channel);
        if (open === undefined) {
          this.#decisions.delete(key);
          return t;
        }
        open.users++;
      }
      this.#decisions.set(key, t);
      return t;
    });
    this.#decisions.set(key, pending);
    return pending;
  }

  async #resolve(dest: Destination): Promise<UdpTarget> {
    const snapshot = this.#ctx.current();
    if (snapshot !== this.#routedOn) {
      this.#routedOn = snapshot;
      this.#closeUnused();
    }
    let outbound: Outbound;
    let rule: string;
    let action: string;
    let lift: AddressSet | undefined;
    let resolved: readonly ResolvedAddress[] | undefined;
    try {
      const routed = await route(this.#ctx, 'udp', dest, snapshot);
      outbound = routed.outbound;
      rule = routed.decision.rule;
      action = routed.decision.action;
      lift = routed.decision.cidrs;
      // The addresses the rules decided on: the decision is remembered, so the datagrams go
      // there, as a relay keeps the address it dialed (no later answer escapes the rules).
      resolved = routed.decision.resolved;
    } catch (err) {
      this.#keepCarried();
      if (err instanceof RuleBlockedError) return { kind: 'drop', reason: 'blocked' };
      this.#ctx.log.debug({ err, dest }, 'UDP destination not routed');
      return { kind: 'drop', reason: 'unrouted' };
    }
    const channel = await this.#channelFor(action, outbound);
    if (!channel || channel === 'unsupported') {
      this.#keepCarried();
      if (channel) return { kind: 'drop', reason: 'unsupported' };
      const retryAt = this.#channels.get(outbound)?.retryAt ?? performance.now() + this.#opts.retryAfterMs;
      return { kind: 'drop', reason: 'upstream_failed', retryAt };
    }
    // Set here, not left to route(): a destination decided meanwhile may have written its own.
    this.#carried = { rule, outbound: action, member: this.#open.get(channel)?.member };
    this.#keepCarried();
    const target: UdpTarget = { kind: 'channel', channel, usedAt: performance.now() };
    if (lift) target.egressLift = lift;
    if (resolved && resolved.length > 0) target.resolved = resolved;
    return target;
  }

  /**
   * route() records every decision in the access record; a destination whose datagrams are
   * dropped (blocked, say) must not rename the association's relayed traffic after its rule:
   * the line, and the rule's byte counter, name the route (and member) that carried datagrams,
   * if any did.
   */
  #keepCarried(): void {
    const carried = this.#carried;
    if (carried === undefined) return;
    const { record } = this.#ctx;
    record.rule = carried.rule;
    record.outbound = carried.outbound;
    record.member = carried.member;
  }

  async #channelFor(action: string, outbound: Outbound): Promise<Opened> {
    const open = outbound.openUdp?.bind(outbound);
    if (!open) return 'unsupported';
    let state = this.#channels.get(outbound);
    if (!state || (state.retryAt !== undefined && performance.now() >= state.retryAt)) {
      const s: ChannelState = { channel: this.#openChannel(outbound, action, open) };
      void s.channel.then((c) => {
        // Asked again after a while either way; and a replaced config's outbound is let go after a reload (#closeUnused).
        if (c === undefined || c === 'unsupported') s.retryAt = performance.now() + this.#opts.retryAfterMs;
      });
      state = s;
      this.#channels.set(outbound, state);
    }
    return state.channel;
  }

  async #openChannel(outbound: Outbound, action: string, open: OpenUdp): Promise<Opened> {
    const ctx = this.#ctx;
    let channel: UdpChannel;
    const octx = outboundContext(ctx);
    octx.udpBudget = this.#opts.budget;
    try {
      channel = await open(octx);
    } catch (err) {
      // The access line says why datagrams went as `upstream_failed`: the first failure (an
      // association that ends by idling or a socket error says that instead).
      ctx.record.error ??= err instanceof Error ? err.message : String(err);
      ctx.log.debug({ err, outbound: action }, 'UDP channel not opened');
      // A pool names the member it tried last, which failed it (kept only while nothing was relayed).
      if (octx.member !== undefined) ctx.record.member = octx.member;
      // The outbound cannot carry UDP after all (a pool whose tag filters leave no member that
      // can, an upstream answering 0x07): unsupported, as one without openUdp.
      return toRep(err) === Rep.COMMAND_NOT_SUPPORTED ? 'unsupported' : undefined;
    }
    if (this.#closed) {
      channel.close();
      return undefined;
    }
    const state: OpenChannel = { action, outbound, member: octx.member, users: 0, openedAt: performance.now(), answeredAt: 0 };
    this.#open.set(channel, state);
    channel.onMessage((from, payload) => {
      state.answeredAt = performance.now();
      this.#opts.onAnswer(from, payload);
    });
    channel.onDrop?.((reason, direction, bytes) => {
      this.#opts.onDrop(reason, direction, bytes);
      // The upstream ended its association: the next datagram opens a new one.
      if (reason === 'upstream_closed') this.#ended(outbound, channel);
    });
    // Known as soon as its control connection closes: the next datagram need not be lost to it.
    channel.onEnd?.(() => this.#ended(outbound, channel));
    return channel;
  }

  /**
   * The upstream ended `channel`'s association: the next datagram opens a new one, unless
   * the upstream keeps ending them before they live (UdpHoldOff); datagrams held off meanwhile
   * are dropped as `upstream_failed`, as when an association cannot be opened.
   */
  #ended(outbound: Outbound, channel: UdpChannel): void {
    const open = this.#open.get(channel);
    if (open === undefined) return;
    this.#forget(outbound, channel);
    const now = performance.now();
    const wait = this.#holdOff.ended(outbound, now - open.openedAt);
    if (wait > 0 && !this.#closed) this.#channels.set(outbound, { channel: Promise.resolve(undefined), retryAt: now + wait });
  }

  /** Closes `channel` and forgets the destinations it carried: their next datagram is routed anew. */
  #forget(outbound: Outbound, channel: UdpChannel): void {
    if (!this.#open.delete(channel)) return;
    this.#lastDest = undefined;
    channel.close();
    this.#channels.delete(outbound);
    for (const [key, t] of this.#decisions) if (!(t instanceof Promise) && t.kind === 'channel' && t.channel === channel) this.#decisions.delete(key);
  }

  /** The oldest remembered destination goes; its channel too when that was its last one and a reload replaced it. */
  #forgetOldest(): void {
    const [key, t] = this.#decisions.entries().next().value!;
    this.#decisions.delete(key);
    if (t instanceof Promise) {
      // Still routing or opening its channel: once settled it counts in no channel's users, so
      // a channel of a replaced config it opened would stay open, unused, as long as the
      // association. It closes then instead, after the datagrams that waited for it have gone
      // (their callbacks were chained before this one).
      void t.then((settled) => this.#closeIfUnused(settled));
      return;
    }
    if (t.kind !== 'channel') return;
    const open = this.#open.get(t.channel);
    if (open !== undefined) open.users--;
    this.#closeIfUnused(t);
  }

  /** Closes the channel `t` names when no remembered destination uses it and a reload replaced its config. */
  #closeIfUnused(t: UdpTarget): void {
    if (t.kind !== 'channel') return;
    const open = this.#open.get(t.channel);
    if (open !== undefined && this.#unused(open)) this.#forget(open.outbound, t.channel);
  }

  #unused(open: OpenChannel): boolean {
    return open.users === 0 && !this.#isLive(open);
  }

  /**
   * After a reload: the channels of replaced configs that no remembered destination uses, or
   * whose destinations have all been quiet for flowIdleMs. A destination is remembered until
   * crowded out, and one the client sent to once, long ago, would keep a socket (and an
   * upstream association) open per reload it came before, up to MAX_DESTINATIONS of them.
   */
  #closeUnused(): void {
    const now = performance.now();
    const idle = this.#opts.flowIdleMs > 0 ? this.#opts.flowIdleMs : Infinity;
    const busy = new Set<UdpChannel>();
    for (const t of this.#decisions.values()) if (!(t instanceof Promise) && t.kind === 'channel' && now - t.usedAt < idle) busy.add(t.channel);
    for (const [channel, open] of this.#open) {
      const quiet = !busy.has(channel) && now - open.answeredAt >= idle;
      if (this.#unused(open) || (quiet && !this.#isLive(open))) this.#forget(open.outbound, channel);
    }
    // A channel that failed to open is remembered to hold off retries; a replaced config's
    // never opens again, and the entry would keep that config's outbound for the association's life.
    const live = new Set(this.#ctx.current().outbounds.values());
    for (const [outbound, state] of this.#channels) if (state.retryAt !== undefined && !live.has(outbound)) this.#channels.delete(outbound);
    this.#holdOff.retain((outbound) => live.has(outbound));
  }

  /** The live config's own channel for its action: a new destination may need it any moment. */
  #isLive(open: OpenChannel): boolean {
    return this.#ctx.current().outbounds.get(open.action) === open.outbound;
  }

  close(): void {
    this.#closed = true;
    this.#lastDest = undefined;
    for (const c of this.#open.keys()) c.close();
    this.#open.clear();
    this.#decisions.clear();
    this.#channels.clear();
    this.#holdOff.clear();
  }
}

const QUEUE_FULL: UdpTarget = { kind: 'drop', reason: 'queue_full' };

/** A remembered "upstream failed" decision expires with the failure it came from. */
function isExpired(t: UdpTarget | Promise<UdpTarget>): boolean {
  return !(t instanceof Promise) && t.kind === 'drop' && t.retryAt !== undefined && performance.now() >= t.retryAt;
}
