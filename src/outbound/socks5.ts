// A SOCKS5 upstream (RFC 1928, RFC 1929 auth) through the `socks` package. The TCP
// stream to the upstream comes from `via` (a chain, to any depth; a pool can be a hop)
// or from our own connector, and `socks` only runs the handshake on it
// (`existing_socket`): that keeps the real errno of an unreachable upstream.

import { isIP, type Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { connectHappyEyeballs } from '../dns/happy-eyeballs.js';
import type { DnsResolver, TcpConnector } from '../dns/types.js';
import type { Socks5UpstreamConfig } from '../config/types.js';
import { ConnectTimeoutError, GatewayError, NameNotResolvedError, Rep, UpstreamRefusedError } from '../errors.js';
import { credentialsFor, type Credentials } from './credentials.js';
import { AbortedError, Deadline } from './deadline.js';
import { keepEarlyData } from './early-data.js';
import { openSocks5Bind } from './socks5-bind.js';
import { fromSocksError, isUpstreamFault, UpstreamUnreachableError } from './socks5-errors.js';
import { openSocks5Udp, type UpstreamDialer } from './socks5-udp.js';
import type { UpstreamOutbound, UpstreamStats } from './stats.js';
import type { Address } from '../protocol/types.js';
import type { BindHandle, Connection, DatagramOutbound, Destination, Outbound, OutboundContext, UdpChannel } from './types.js';

export interface Socks5Deps {
  dns: DnsResolver;
  /** ms for the whole attempt: every hop and every handshake. */
  connectTimeout: number;
  /** Reach the upstream through this outbound (a chain) instead of connecting to it ourselves. */
  via?: Outbound;
  /** How to reach the upstream when there is no `via`; happy eyeballs by default. */
  connector?: TcpConnector;
}

/** Consecutive upstream faults after which `stats().healthy` reads false (pools decide on their own). */
const UNHEALTHY_AFTER = 3;

type Phase = 'resolve' | 'dial' | 'handshake';

export function createSocks5Outbound(name: string, cfg: Socks5UpstreamConfig, deps: Socks5Deps): UpstreamOutbound & DatagramOutbound {
  const connector = deps.connector ?? connectHappyEyeballs;
  const counters = { attempts: 0, failures: 0, active: 0, consecutiveFaults: 0 };

  /**
   * remote_dns: false resolves here (or takes the router's answer) and sends an address: the
   * first one, then the first of the other family (`dns.prefer` is the family tried first,
   * not the only one). One per family keeps the attempts bounded whatever the answer holds.
   */
  async function targets(dest: Destination, ctx: OutboundContext): Promise<Destination[]> {
    if (isIP(dest.host) !== 0) return [dest];
    if (cfg.remote_dns) return [assertSendable(dest)];
    const addresses = ctx.resolved ?? (await deps.dns.lookup(dest.host));
    const first = addresses[0];
    if (!first) throw new NameNotResolvedError(dest.host, 'no addresses');
    const other = addresses.find((a) => a.family !== first.family);
    return [first, ...(other ? [other] : [])].map((a) => ({ host: a.address, port: dest.port }));
  }

  async function dial(signal: AbortSignal, ctx: OutboundContext): Promise<Connection> {
    if (deps.via) return deps.via.connect({ host: cfg.host, port: cfg.port }, { ...ctx, signal, resolved: undefined });
    const addresses = await deps.dns.lookup(cfg.host);
    return { socket: await connector(addresses, cfg.port, { timeout: deps.connectTimeout, signal }) };
  }

  function classify(err: unknown, phase: Phase, heard: boolean, deadline: Deadline, ctx: OutboundContext, dest: Destination): GatewayError {
    if (ctx.signal.aborted) return new AbortedError(`upstream "${name}"`); // no cause: a `socks` error holds the password
    if (deadline.timedOut) {
      const timeout = new ConnectTimeoutError(`upstream "${name}" to ${dest.host}:${dest.port}`, deps.connectTimeout);
      // Silent since our greeting: the upstream is at fault. Once it has answered, it is
      // waiting on the destination: a timeout about the destination.
      return phase === 'handshake' && heard ? timeout : new UpstreamUnreachableError(name, timeout);
    }
    if (phase === 'dial') return new UpstreamUnreachableError(name, err);
    if (phase === 'handshake') return fromSocksError(name, err);
    return err instanceof GatewayError ? err : new NameNotResolvedError(dest.host, 'lookup failed', { cause: err });
  }

  async function connect(dest: Destination, ctx: OutboundContext): Promise<Connection> {
    counters.attempts++;
    const deadline = new Deadline(ctx.signal, deps.connectTimeout);
    let phase: Phase = 'resolve';
    let hop: Connection | undefined;
    const heard = { value: false };
    try {
      const candidates = await targets(dest, ctx);
      let reply: { bound: Address | undefined; head: Buffer | undefined } | undefined;
      for (let i = 0; ; i++) {
        phase = 'dial';
        heard.value = false;
        hop = await dial(deadline.signal, ctx);
        phase = 'handshake';
        try {
          reply = await handshake(hop.socket, candidates[i]!, deadline.signal, heard, credentialsFor(cfg, ctx));
          break;
        } catch (err) {
          if (i + 1 >= candidates.length || deadline.signal.aborted || !otherAddressMayDo(err)) throw err;
          hop.socket.destroy();
          hop.release?.();
          hop = undefined;
        }
      }
      counters.consecutiveFaults = 0;
      counters.active++;
      const hopRelease = hop.release;
      let released = false;
      const release = (): void => {
        if (released) return;
        released = true;
        counters.active--;
        hopRelease?.();
      };
      const conn: Connection = { socket: hop.socket, release };
      if (reply.bound) conn.bound = reply.bound;
      if (reply.head) conn.head = reply.head;
      if (hop.member) conn.member = hop.member; // a pool as the hop: the access log names its member
      return conn;
    } catch (err) {
      hop?.socket.destroy();
      hop?.release?.();
      counters.failures++;
      const e = classify(err, phase, heard.value, deadline, ctx, dest);
      if (isUpstreamFault(e)) counters.consecutiveFaults++;
      else if (e.code === 'GW_ERR_UPSTREAM_REFUSED') counters.consecutiveFaults = 0; // it answered: alive
      throw e;
    } finally {
      deadline.clear();
    }
  }

  /** RFC 1928 §3–§6 on an open stream to the upstream; resolves with its BND address (and bytes that could not wait in the stream). */
  async function handshake(
    socket: Socket,
    to: Destination,
    signal: AbortSignal,
    heard: { value: boolean },
    creds: Credentials,
  ): Promise<{ bound: Address | undefined; head: Buffer | undefined }> {
    if (socket.destroyed) throw new Error('Socket closed');
    const onAbort = (): void => {
      socket.destroy();
    };
    const onData = (): void => {
      heard.value = true;
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('data', onData);
    try {
      // A hop's stream arrives paused (see keepEarlyData); `socks` only listens for 'data'.
      socket.resume();
      const info = await SocksClient.createConnection({
        proxy: { host: cfg.host, port: cfg.port, type: 5, userId: creds.username, password: creds.password },
        command: 'connect',
        destination: to,
        existing_socket: socket,
        // Our deadline decides; this only keeps `socks` from timing out first.
        timeout: deps.connectTimeout * 2 + 1_000,
      });
      const head = await keepEarlyData(socket);
      return { bound: boundOf(info.remoteHost), head };
    } finally {
      signal.removeEventListener('abort', onAbort);
      socket.off('data', onData);
    }
  }

  function stats(): UpstreamStats {
    return {
      name,
      attempts: counters.attempts,
      failures: counters.failures,
      active: counters.active,
      healthy: counters.consecutiveFaults < UNHEALTHY_AFTER,
    };
  }

  const out: UpstreamOutbound & DatagramOutbound = { name, connect, stats, close: async () => {} };
  // UDP ASSOCIATE and BIND talk to the upstream directly: a chain cannot carry the upstream's
  // UDP relay or its listening port, so a chained upstream answers those with 0x07.
  // They reach the upstream with the same dialer as CONNECT (dns.hosts, the cache, the guard).
  if (!deps.via) {
    const upstream = { host: cfg.host, port: cfg.port, username: cfg.username, password: cfg.password, name };
    const dialFor = (ctx: OutboundContext): UpstreamDialer => (signal) => dial(signal, ctx).then((c) => c.socket);
    out.openUdp = (ctx: OutboundContext): Promise<UdpChannel> =>
      openSocks5Udp({ ...upstream, ...credentialsFor(upstream, ctx), remoteDns: cfg.remote_dns }, ctx, { connectTimeout: deps.connectTimeout, dns: deps.dns, dial: dialFor(ctx) });
    out.bind = (dest: Destination, ctx: OutboundContext): Promise<BindHandle> =>
      openSocks5Bind({ ...upstream, ...credentialsFor(upstream, ctx) }, dest, ctx, { connectTimeout: deps.connectTimeout, dial: dialFor(ctx) });
  }
  return out;
}

/** The upstream could not reach that address (RFC 1928 §6 0x03–0x05): another family may do. */
function otherAddressMayDo(err: unknown): boolean {
  const e = fromSocksError('', err);
  if (!(e instanceof UpstreamRefusedError)) return false;
  return e.rep === Rep.NETWORK_UNREACHABLE || e.rep === Rep.HOST_UNREACHABLE || e.rep === Rep.CONNECTION_REFUSED;
}

/** `socks` writes a domain as `host.length` then UTF-8: exact for ASCII only. */
function assertSendable(to: Destination): Destination {
  if (!/^[\x21-\x7e]{1,255}$/.test(to.host)) {
    throw new GatewayError('GW_ERR_UPSTREAM_NAME', `name not sendable upstream: ${JSON.stringify(to.host)}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  return to;
}

function boundOf(remote: SocksRemoteHost | undefined): Address | undefined {
  // `socks` swaps a 0.0.0.0 BND for `proxy.ipaddress`, which we never set: undefined then.
  const host: string | undefined = remote?.host;
  if (!host || host === '0.0.0.0' || host === '::') return undefined;
  return { host, port: remote?.port ?? 0 };
}
