// UDP through a SOCKS5 upstream's own UDP ASSOCIATE (RFC 1928 §7), with the `socks`
// package's command handshake and our own UDP header codec. The TCP control connection
// stays open for the channel's life: the upstream ends the association when it closes.

import { literalLookup } from '../dns/literal-lookup.js';
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { connect as tcpConnect, isIP, isIPv6, type Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { asOutOfDescriptors, ConnectTimeoutError, type GatewayError } from '../errors.js';
import { formatAddress, ipv6ToBytes, ipv6ToText, unmapped } from '../protocol/address.js';
import { decodeUdpDatagram, encodeUdpHeader, hasUdpHeader } from '../protocol/messages.js';
import { AbortedError, Deadline } from './deadline.js';
import { assertRfc1929 } from './credentials.js';
import { releaseWhenDone } from './socks-client-release.js';
import { fromSocksError, UpstreamHandshakeError, UpstreamUnreachableError } from './socks5-errors.js';
import { handshakeFailure, watchFirstBytes, type FirstBytes, type Seen } from './socks-first-bytes.js';
import { ASSOCIATION_UDP_BYTES, ByteBudget } from './byte-budget.js';
import { ChannelEvents, datagramResolver } from './udp-channel-events.js';
import { DatagramSender } from './udp-send.js';
import { connectedPeer } from './udp-socket.js';
import type { AddressSet } from './egress.js';
import type { Destination, OutboundContext, UdpChannel } from './types.js';

export interface Socks5UdpUpstream {
  host: string;
  port: number;
  username?: string;
  password?: string;
  /** For messages; `host:port` when absent. */
  name?: string;
  /** false: names are resolved here (with `deps.dns`) and sent as addresses. Default true. */
  remoteDns?: boolean;
}

/** Opens the TCP connection to the upstream itself; the outbound passes the one CONNECT uses. */
export type UpstreamDialer = (signal: AbortSignal) => Promise<Socket>;

export interface Socks5UdpDeps {
  /** ms for the TCP connection and the ASSOCIATE handshake together. */
  connectTimeout: number;
  /** How the upstream is reached: through the DnsResolver, like CONNECT. Default: dialLiteral. */
  dial?: UpstreamDialer;
  dns?: DnsResolver;
  /** Name lookups in flight (remote_dns false) beyond this: their datagrams are dropped. */
  maxQueued?: number;
}


/** Silence on an association's control connection after which keepalive probes start. */
const CONTROL_KEEPALIVE_MS = 60_000;

/** Opens an association on `upstream`; rejects with a GatewayError (as CONNECT would). */
export async function openSocks5Udp(upstream: Socks5UdpUpstream, ctx: OutboundContext, deps: Socks5UdpDeps): Promise<UdpChannel> {
  const name = upstream.name ?? formatAddress(upstream);
  const deadline = new Deadline(ctx.signal, deps.connectTimeout);
  let tcp: Socket | undefined;
  let udp: DgramSocket | undefined;
  let phase: 'dial' | 'handshake' = 'dial';
  let first: FirstBytes | undefined;
  try {
    tcp = await (deps.dial ?? ((signal: AbortSignal) => dialLiteral(upstream, signal)))(deadline.signal);
    phase = 'handshake';
    udp = await bindBeside(tcp);
    // Watched from the tick `socks` starts reading it in: nothing flows to this listener alone.
    first = watchFirstBytes(tcp);
    const remote = await associate(tcp, upstream, unknownSource(udp), deadline.signal, deps.connectTimeout);
    // RFC 1928 §7: BND is where datagrams go; a wildcard means "the address you reached me on".
    const relay = boundAddress(remote, tcp);
    if (relay.port === 0) throw new UpstreamHandshakeError(name, 'UDP ASSOCIATE reply names port 0');
    connectTo(udp, relay, name);
    return channel(name, tcp, udp, relay, upstream, ctx, deps);
  } catch (err) {
    const ended = tcp?.readableEnded ?? false;
    tcp?.destroy();
    if (udp) udp.close();
    throw classify(err, name, phase, deadline, ctx, deps.connectTimeout, first && { version: 5, answered: first.answered(), ended });
  } finally {
    first?.stop();
    deadline.clear();
  }
}

function classify(
  err: unknown,
  name: string,
  phase: 'dial' | 'handshake',
  deadline: Deadline,
  ctx: OutboundContext,
  ms: number,
  seen?: Seen,
): GatewayError {
  if (ctx.signal.aborted) return new AbortedError(`upstream "${name}" UDP`, { cause: err });
  // No socket to be had (the TCP one, or the UDP one beside it): the gateway's shortage, not the upstream's fault.
  const shortage = asOutOfDescriptors(`upstream "${name}" UDP`, err);
  if (shortage) return shortage;
  // No destination is asked before the reply (RFC 1928 §7): silence until then is the upstream's own.
  // In the handshake: what the upstream sent says whether it was silent or of another kind.
  if (seen) return handshakeFailure(name, 'UDP ASSOCIATE', err, seen, deadline.timedOut, ms);
  if (deadline.timedOut) return new UpstreamUnreachableError(name, new ConnectTimeoutError(`upstream "${name}" UDP ASSOCIATE`, ms));
  return phase === 'dial' ? new UpstreamUnreachableError(name, err) : fromSocksError(name, err);
}

/**
 * TCP to an upstream given as an IP address, given up when `signal` aborts. A name is
 * refused: names go through the DnsResolver (dns.hosts, the cache, the numeric-name guard),
 * never getaddrinfo, so an upstream by name needs the outbound's dialer.
 */
export function dialLiteral(upstream: { host: string; port: number }, signal: AbortSignal): Promise<Socket> {
  if (isIP(upstream.host) === 0) return Promise.reject(new Error(`upstream "${upstream.host}" is a name: it needs a dialer that resolves`));
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: upstream.host, port: upstream.port });
    const onAbort = (): void => {
      socket.destroy();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    socket.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    socket.once('connect', () => {
      signal.removeEventListener('abort', onAbort);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

/** The datagram socket goes on the address our TCP connection left from: the upstream sees one client, the one its zeros DST stands for. */
function bindBeside(tcp: Socket): Promise<DgramSocket> {
  const local = unmapped(tcp.localAddress ?? '0.0.0.0');
  const udp = createSocket({ type: isIPv6(local) ? 'udp6' : 'udp4', lookup: literalLookup });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      udp.close();
      reject(err);
    };
    udp.once('error', onError);
    // Exclusive: in a cluster worker a shared bind would hand every worker the same
    // socket (the primary keys port-0 binds by address and per-worker index).
    udp.bind({ port: 0, address: local, exclusive: true }, () => {
      udp.off('error', onError);
      resolve(udp);
    });
  });
}

/**
 * RFC 1928 §7: DST names where the datagrams will come from, and all zeros when the client does
 * not know. Behind NAT (a container, a cloud network) the upstream sees neither our address nor,
 * often, our port: a server that holds us to a DST naming them (Dante does) drops every datagram,
 * or refuses the ASSOCIATE when its rules do not pass that address. Zeros have it take our
 * datagrams from the address our TCP connection reaches it from, as it sees it.
 */
function unknownSource(udp: DgramSocket): Destination {
  return { host: udp.address().family === 'IPv6' ? '::' : '0.0.0.0', port: 0 };
}

function associate(tcp: Socket, upstream: Socks5UdpUpstream, from: Destination, signal: AbortSignal, ms: number): Promise<SocksRemoteHost | undefined> {
  return new Promise((resolve, reject) => {
    assertRfc1929(upstream.name ?? formatAddress(upstream), upstream); // a throw here rejects
    // `createConnection` takes CONNECT only; ASSOCIATE runs on a client of its own.
    const client = new SocksClient({
      proxy: { host: upstream.host, port: upstream.port, type: 5, userId: upstream.username, password: upstream.password },
      command: 'associate',
      destination: from,
      existing_socket: tcp,
      // Our deadline decides (connect_timeout from before the dial); this only keeps `socks` from
      // timing out first, and its timer, never cleared, holds a husk of the client until it fires.
      timeout: ms + 1_000,
    });
    const onAbort = (): void => {
      tcp.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    client.once('established', (info) => {
      signal.removeEventListener('abort', onAbort);
      releaseWhenDone(client);
      resolve(info.remoteHost);
    });
    client.once('error', (err) => {
      signal.removeEventListener('abort', onAbort);
      releaseWhenDone(client);
      reject(err);
    });
    client.connect(tcp);
  });
}

/**
 * Every datagram goes to the upstream's relay and only its answers count: connected to it,
 * the socket sends without naming an address and the kernel drops anything else. BND is an
 * IP literal (boundAddress), so this connects before it returns.
 */
function connectTo(udp: DgramSocket, relay: Destination, name: string): void {
  // The callback takes a failure that would otherwise be emitted after this returns.
  udp.connect(relay.port, relay.host, () => {});
  if (!connectedPeer(udp)) throw new UpstreamHandshakeError(name, `UDP ASSOCIATE reply names ${formatAddress(relay)}, which this socket cannot reach`);
}

/** A BND from the upstream; a wildcard (or nothing) means the address we reached it on. */
export function boundAddress(remote: SocksRemoteHost | undefined, tcp: Socket): Destination {
  return { host: boundHost(remote) ?? unmapped(tcp.remoteAddress ?? ''), port: remote?.port ?? 0 };
}

/** The address a BND names; undefined for a wildcard, for nothing (`socks` drops 0.0.0.0) and for a name. */
export function boundHost(remote: SocksRemoteHost | undefined): string | undefined {
  const host = remote?.host ? normalizeIp(remote.host) : '';
  return host === '' || host === '0.0.0.0' || host === '::' || isIP(host) === 0 ? undefined : host;
}

function channel(
  name: string,
  tcp: Socket,
  udp: DgramSocket,
  relay: Destination,
  upstream: Socks5UdpUpstream,
  ctx: OutboundContext,
  deps: Socks5UdpDeps,
): UdpChannel {
  const maxQueued = deps.maxQueued ?? 256;
  const events = new ChannelEvents();
  const drop = events.drop;
  // Bytes waiting for a name or in the send queue: the association's budget.
  const budget = ctx.udpBudget ?? new ByteBudget(ASSOCIATION_UDP_BYTES);
  const resolve = deps.dns && upstream.remoteDns === false ? datagramResolver(deps.dns, maxQueued, drop, budget, ctx.log) : undefined;
  let closed = false;
  const ended: Array<() => void> = [];

  const sender = new DatagramSender(udp, budget, () => drop('send_error'));
  const close = (): void => {
    if (closed) return;
    closed = true;
    sender.close();
    tcp.destroy();
    udp.close();
  };
  // The association lives as long as this connection (RFC 1928 §7); nothing more comes on it,
  // so only keepalive probes find an upstream gone without a FIN: the channel then ends, and
  // the next datagram opens another association (through another member, in a pool).
  tcp.setKeepAlive(true, CONTROL_KEEPALIVE_MS);
  tcp.on('data', () => {});
  tcp.on('error', (err) => ctx.log.debug({ err, upstream: name }, 'UDP control connection error'));
  tcp.once('close', () => {
    if (closed) return;
    ctx.log.debug({ upstream: name }, 'upstream ended the UDP association');
    close();
    for (const l of ended) l();
  });
  tcp.resume();
  udp.on('error', (err) => ctx.log.debug({ err, upstream: name }, 'UDP socket error'));
  // Connected to the upstream's relay (connectTo), the kernel passes only its datagrams; the
  // check is for those that came between bind and connect (the request named this socket),
  // read in the same turn as the reply. The relay as the kernel names a datagram's source.
  udp.on('message', frameReader(events, connectedPeer(udp)!));

  // The header last sent and the destination it names: one destination's run is encoded once.
  let last: { dest: Destination; header: Buffer } | undefined;
  const sendFrame = (dest: Destination, payload: Buffer): void => {
    if (closed) return drop('upstream_closed', 'up', payload.length);
    if (last === undefined || last.dest !== dest) {
      const header = headerFor(dest);
      if (!header) return drop('unsendable', 'up', payload.length);
      last = { dest, header };
    }
    if (!sender.send(last.header, payload)) drop('queue_full', 'up', payload.length);
  };

  function send(dest: Destination, payload: Buffer, _egressLift?: AddressSet, resolved?: readonly ResolvedAddress[]): void {
    // remote_dns false: names are resolved here (or by the rules, whose answer is kept) and sent to the upstream as addresses.
    if (!resolve || isIP(dest.host) !== 0) return sendFrame(dest, payload);
    if (resolved !== undefined && resolved.length > 0) return sendFrame({ host: resolved[0]!.address, port: dest.port }, payload);
    resolve(dest.host, payload.length, ([first]) => sendFrame({ host: first!.address, port: dest.port }, payload));
  }

  const a = udp.address();
  return {
    send,
    onMessage: events.onMessage,
    onDrop: events.onDrop,
    onEnd: (l) => void ended.push(l),
    local: { host: a.address, port: a.port },
    close,
  };
}

/** The header for `dest`; undefined for a name the upstream cannot be sent (not printable ASCII, too long). */
function headerFor(dest: Destination): Buffer | undefined {
  if (isIP(dest.host) === 0 && !/^[\x21-\x7e]{1,255}$/.test(dest.host)) return undefined;
  try {
    return encodeUdpHeader(dest);
  } catch {
    return undefined;
  }
}

/**
 * RFC 1928 §7 headers of the datagrams from the upstream's relay, with our own codec (`socks`'s
 * parser turns an unknown ATYP or an empty name into an empty host, which no reply can carry).
 * A header like the last one names the same source, and is not decoded again. Only the
 * relay's datagrams are read: anything else is unsolicited.
 */
function frameReader(events: ChannelEvents, relay: Destination): (msg: Buffer, rinfo: RemoteInfo) => void {
  let last: { header: Buffer; from: Destination } | undefined;
  return (msg, rinfo) => {
    if (rinfo.port !== relay.port || rinfo.address !== relay.host) return events.drop('unsolicited', 'down');
    if (last !== undefined && hasUdpHeader(msg, last.header)) return events.message(last.from, msg.subarray(last.header.length));
    let d;
    try {
      d = decodeUdpDatagram(msg);
    } catch {
      return events.drop('malformed', 'down'); // ProtocolError: truncated header, unknown ATYP, zero-length name
    }
    if (d.frag !== 0) return events.drop('frag', 'down');
    last = { header: Buffer.from(msg.subarray(0, msg.length - d.payload.length)), from: { host: unmapped(d.dest.host), port: d.dest.port } };
    events.message(last.from, d.payload);
  };
}

/** Node's text for an IP (`socks` prints IPv6 in full), IPv4-mapped as plain IPv4. */
export function normalizeIp(host: string): string {
  return isIPv6(host) ? unmapped(ipv6ToText(ipv6ToBytes(host), 0)) : host;
}

