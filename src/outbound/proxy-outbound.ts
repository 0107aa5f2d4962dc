// What every proxy upstream (socks5, socks4, http) shares: one deadline for the whole
// attempt, the stream to the proxy from `via` (a chain of any depth and any mix; a pool
// can be a hop) or from our own connector, counters for metrics, and which failures are
// the proxy's own fault. Each protocol brings only its handshake and its error adapter.

import { isIP, type Socket } from 'node:net';
import { connectHappyEyeballs } from '../dns/happy-eyeballs.js';
import { addressesOf } from '../dns/resolver.js';
import type { DnsResolver, TcpConnector } from '../dns/types.js';
import { asOutOfDescriptors, ConnectTimeoutError, GatewayError, NameNotResolvedError, Rep, UpstreamRefusedError } from '../errors.js';
import { formatAddress } from '../protocol/address.js';
import type { Address } from '../protocol/types.js';
import { credentialsFor, type Credentials } from './credentials.js';
import { AbortedError, Deadline, until } from './deadline.js';
import { isUpstreamFault, UpstreamUnreachableError } from './socks5-errors.js';
import { countFailed, heldOpen, holdOne, movingLatency, type HeldHandle, type UpstreamOutbound, type UpstreamStats } from './stats.js';
import type { BindHandle, Connection, Destination, Outbound, OutboundContext, UdpChannel } from './types.js';
import { UpstreamState } from './upstream-state.js';
import { giveUp } from './give-up.js';

export interface ProxyDeps {
  dns: DnsResolver;
  /** ms for the whole attempt: every hop and every handshake. */
  connectTimeout: number;
  /** Reach the proxy through this outbound (a chain) instead of connecting to it ourselves. */
  via?: Outbound;
  /** How to reach the proxy when there is no `via`; happy eyeballs by default. */
  connector?: TcpConnector;
  /** What the same upstream of the config being replaced counted (upstream-state.ts); a fresh record by default. */
  state?: UpstreamState;
}

/** A stream through the proxy to the destination. */
export interface Established {
  /** The stream itself: the hop's socket, or a TLS socket over it. */
  socket: Socket;
  bound?: Address | undefined;
  /** Bytes the destination sent with the proxy's reply, delivered to the client first. */
  head?: Buffer | undefined;
}

export interface HandshakeRun {
  signal: AbortSignal;
  credentials: Credentials;
  /** The proxy has answered all it answers before it tries the destination: a timeout from now on is about the destination. */
  heard(): void;
  /** What the proxy is being asked before it has answered (`the TLS handshake`): named if it stays silent. */
  asking(what: string): void;
}

/** One proxy protocol: what it sends as the destination, how it asks, how its refusals read. */
export interface ProxyProtocol {
  /** Addresses to ask for, in order (several: one per family, when names are resolved here). */
  targets(dest: Destination, ctx: OutboundContext): Promise<Destination[]>;
  handshake(socket: Socket, to: Destination, run: HandshakeRun): Promise<Established>;
  /** The one adapter from this protocol's handshake failures to GatewayErrors. */
  fromError(upstream: string, err: unknown): GatewayError;
}

export interface ProxyEndpoint {
  host: string;
  port: number;
  username?: string | undefined;
  password?: string | undefined;
}

/** Consecutive upstream faults after which `stats().healthy` reads false (pools decide on their own). */
const UNHEALTHY_AFTER = 3;

type Phase = 'resolve' | 'dial' | 'handshake';

/** What a proxy carries besides CONNECT (SOCKS BIND, SOCKS5 UDP ASSOCIATE): counted as its connects are. */
export interface ProxyCommands {
  bind?(dest: Destination, ctx: OutboundContext): Promise<BindHandle>;
  openUdp?(ctx: OutboundContext): Promise<UdpChannel>;
}

export function createProxyOutbound(name: string, proxy: ProxyEndpoint, protocol: ProxyProtocol, deps: ProxyDeps, commands: ProxyCommands = {}): UpstreamOutbound {
  /** The replaced config's record when unchanged; `inFlight` is left out of stats() (see UpstreamStats.attempts). */
  const counters = deps.state ?? new UpstreamState('');
  const dial = proxyDialer(proxy, deps);

  function classify(err: unknown, phase: Phase, heard: boolean, asking: string, deadline: Deadline, ctx: OutboundContext, dest: Destination): GatewayError {
    // First: through a chain, the caller's signal is the next hop's deadline, and its end is this hop's timeout.
    if (deadline.timedOut) {
      // The hop before this proxy timed out on the same deadline and has said who was silent
      // (itself, or this proxy's address): keep its words rather than blame this proxy's destination.
      if (phase === 'dial' && deps.via && err instanceof GatewayError && !(err instanceof AbortedError)) return new UpstreamUnreachableError(name, err);
      const timeout = new ConnectTimeoutError(`upstream "${name}" to ${formatAddress(dest)}`, deps.connectTimeout);
      // Still resolving the destination's name here: the proxy was never asked anything.
      if (phase === 'resolve') return timeout;
      // Silent since our request: the proxy is at fault. Once it has shown it is alive, it is
      // waiting on the destination: a timeout about the destination.
      if (phase === 'dial') return new UpstreamUnreachableError(name, timeout);
      if (heard) return timeout;
      // Connected, and silent: said so, or the line sends people to the network (a plain
      // proxy's port given tls: true waits for a request line that never comes).
      return new UpstreamUnreachableError(name, new ConnectTimeoutError(`upstream "${name}" to ${formatAddress(dest)}`, deps.connectTimeout, `connected, no answer to ${asking}`), 'silent');
    }
    // No cause: a client error may hold the password.
    if (ctx.signal.aborted) return new AbortedError(`upstream "${name}"`, undefined, phase === 'handshake' && heard);
    // No socket to be had, here or at a hop before: the gateway's shortage, not this proxy's fault.
    const shortage = asOutOfDescriptors(`upstream "${name}"`, err);
    if (shortage) return shortage;
    if (phase === 'dial') return new UpstreamUnreachableError(name, err);
    if (phase === 'handshake') return protocol.fromError(name, err);
    return err instanceof GatewayError ? err : new NameNotResolvedError(dest.host, 'lookup failed', { cause: err });
  }

  async function connect(dest: Destination, ctx: OutboundContext): Promise<Connection> {
    counters.attempts++;
    counters.inFlight++;
    const started = performance.now();
    const deadline = new Deadline(ctx.signal, deps.connectTimeout);
    const credentials = credentialsFor({ username: proxy.username, password: proxy.password }, ctx);
    let phase: Phase = 'resolve';
    let hop: Connection | undefined;
    let heard = false;
    let asking = 'our handshake';
    const run: HandshakeRun = { signal: deadline.signal, credentials, heard: () => void (heard = true), asking: (what) => void (asking = what) };
    try {
      // A name resolved here (remote_dns: false) is inside the deadline too.
      const candidates = await until(protocol.targets(dest, ctx), deadline.signal);
      let done: Established | undefined;
      for (let i = 0; !done; i++) {
        phase = 'dial';
        heard = false;
        asking = 'our handshake';
        hop = await dial(deadline.signal, ctx);
        phase = 'handshake';
        try {
          done = await protocol.handshake(hop.socket, candidates[i]!, run);
        } catch (err) {
          if (i + 1 >= candidates.length || deadline.signal.aborted || !otherAddressMayDo(protocol.fromError(name, err))) throw err;
          giveUp(hop);
          hop = undefined;
        }
      }
      counters.consecutiveFaults = 0;
      counters.latencyMs = movingLatency(counters.latencyMs, performance.now() - started);
      return handOut(hop!, done);
    } catch (err) {
      if (hop) giveUp(hop);
      throw failed(classify(err, phase, heard, asking, deadline, ctx, dest));
    } finally {
      counters.inFlight--;
      deadline.clear();
    }
  }

  function failed(e: GatewayError): GatewayError {
    countFailed(counters, e); // not a failure of this upstream when not its doing (a caller gone, no descriptor)
    if (isUpstreamFault(e)) counters.consecutiveFaults++;
    else if (e.code === 'GW_ERR_UPSTREAM_REFUSED') counters.consecutiveFaults = 0; // it answered: alive
    return e;
  }

  function handOut(hop: Connection, done: Established): Connection {
    const letGo = holdOne(counters);
    const release = (): void => {
      if (letGo()) hop.release?.();
    };
    const conn: Connection = { socket: done.socket, release };
    if (done.bound) conn.bound = done.bound;
    if (done.head) conn.head = done.head;
    if (hop.member) conn.member = hop.member; // a pool as the hop: the access log names its member
    return conn;
  }

  function stats(): UpstreamStats {
    return {
      name,
      attempts: counters.attempts - counters.inFlight,
      failures: counters.failures,
      active: counters.active,
      healthy: counters.consecutiveFaults < UNHEALTHY_AFTER,
      ...(counters.latencyMs === undefined ? {} : { latencyMs: counters.latencyMs }),
    };
  }

  /**
   * A BIND or an association counts as a pool counts its member's: an attempt, a failure when
   * it does not open (unless withdrawn), and active until it is closed or ends.
   */
  async function held<T extends HeldHandle>(open: () => Promise<T>): Promise<T> {
    counters.attempts++;
    counters.inFlight++;
    const started = performance.now();
    let value: T;
    try {
      value = await open();
    } catch (err) {
      if (err instanceof GatewayError) throw failed(err);
      counters.failures++;
      throw err;
    } finally {
      counters.inFlight--;
    }
    counters.consecutiveFaults = 0;
    counters.latencyMs = movingLatency(counters.latencyMs, performance.now() - started);
    return heldOpen(counters, value);
  }

  const out: UpstreamOutbound = { name, connect, stats, memory: () => counters, close: async () => {} };
  const { bind, openUdp } = commands;
  if (bind) out.bind = (dest, ctx) => held(() => bind(dest, ctx));
  if (openUdp) out.openUdp = (ctx) => held(() => openUdp(ctx));
  return out;
}

/**
 * The stream to the proxy itself: through `via` (the previous hop's connection), or our own
 * connector with the name resolved by the DnsResolver (dns.hosts, the cache, the guard).
 */
export function proxyDialer(proxy: { host: string; port: number }, deps: ProxyDeps): (signal: AbortSignal, ctx: OutboundContext) => Promise<Connection> {
  const connector = deps.connector ?? connectHappyEyeballs;
  return async (signal, ctx) => {
    if (deps.via) {
      const hopCtx = hopContext(ctx, signal);
      try {
        const hop = await deps.via.connect({ host: proxy.host, port: proxy.port }, hopCtx);
        // What this proxy sent with the previous hop's reply is the start of our handshake's answer.
        if (hop.head) hop.socket.unshift(hop.head);
        return hop;
      } finally {
        // A pool as the hop names the member it tried in the hop's context: a request that
        // fails there, or later in the chain, is logged with that member as a connected one is.
        if (hopCtx.member !== undefined) ctx.member = hopCtx.member;
      }
    }
    // The proxy's own name is looked up inside the attempt's deadline too (a name server that
    // never answers would hold the request for dns.timeout), and given up when the client leaves.
    const addresses = await until(deps.dns.lookup(proxy.host), signal);
    return { socket: await connector(addresses, proxy.port, { timeout: deps.connectTimeout, signal }) };
  };
}

/**
 * The stream alone, for a BIND's or an ASSOCIATE's control connection, which outlive the
 * dial: the hop's connection (a pool member's or a chained upstream's open count) is held
 * until the stream closes, however it ends, and released once then.
 */
export function heldUntilClose(conn: Connection): Socket {
  const { socket, release } = conn;
  if (release) {
    if (socket.closed) release();
    else socket.once('close', release);
  }
  return socket;
}

/**
 * The previous hop dials this proxy for the same request, bound by this attempt's deadline,
 * and with no answer of the router's (that was for the destination, not the proxy). Fields
 * copied one by one: a context may keep `log` and `signal` behind getters, which a spread drops.
 */
function hopContext(ctx: OutboundContext, signal: AbortSignal): OutboundContext {
  const hop: OutboundContext = { signal, log: ctx.log, sessionKey: ctx.sessionKey, viaHop: true };
  if (ctx.user !== undefined) hop.user = ctx.user;
  if (ctx.params !== undefined) hop.params = ctx.params;
  if (ctx.udpBudget !== undefined) hop.udpBudget = ctx.udpBudget;
  if (ctx.egressLift !== undefined) hop.egressLift = ctx.egressLift;
  if (ctx.command !== undefined) hop.command = ctx.command;
  return hop;
}

/** The proxy could not reach that address (RFC 1928 §6 0x03–0x05): another family may do. */
function otherAddressMayDo(e: GatewayError): boolean {
  if (!(e instanceof UpstreamRefusedError)) return false;
  return e.rep === Rep.NETWORK_UNREACHABLE || e.rep === Rep.HOST_UNREACHABLE || e.rep === Rep.CONNECTION_REFUSED;
}

/**
 * remote_dns: false resolves here (or takes the router's answer) and asks for an address: the
 * first one, then the first of the other family (`dns.prefer` is the family tried first, not
 * the only one). One per family keeps the attempts bounded whatever the answer holds.
 * `family` keeps only one family (SOCKS4 carries IPv4 only).
 */
export async function resolveHere(dest: Destination, ctx: OutboundContext, dns: DnsResolver, family?: 4 | 6): Promise<Destination[]> {
  if (isIP(dest.host) !== 0) return [dest];
  // The router's answer, its failed lookup included, is this request's: not asked again.
  const all = await addressesOf(dns, dest.host, ctx);
  const addresses = family === undefined ? all : all.filter((a) => a.family === family);
  const first = addresses[0];
  if (!first) {
    if (all.length > 0) throw new GatewayError('GW_ERR_UPSTREAM_FAMILY', `${dest.host}: no IPv${family} address`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
    throw new NameNotResolvedError(dest.host, 'no addresses');
  }
  const other = addresses.find((a) => a.family !== first.family);
  return [first, ...(other ? [other] : [])].map((a) => ({ host: a.address, port: dest.port }));
}

/** A name goes to the proxy as `length` then bytes: exact for printable ASCII only. */
export function assertSendable(to: Destination): Destination {
  if (!/^[\x21-\x7e]{1,255}$/.test(to.host)) {
    throw new GatewayError('GW_ERR_UPSTREAM_NAME', `name not sendable upstream: ${JSON.stringify(to.host)}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  return to;
}
