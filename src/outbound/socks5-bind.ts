// BIND through a SOCKS5 upstream (RFC 1928 §4), or a SOCKS4 one (the same two replies in
// SOCKS4's form): the upstream listens for the peer and sends two replies on one connection,
// which `socks` reports as 'bound' then 'established'.

import { isIP, type Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import type { DnsResolver } from '../dns/types.js';
import { asOutOfDescriptors, ConnectTimeoutError, GatewayError, NameNotResolvedError } from '../errors.js';
import { formatAddress } from '../protocol/address.js';
import { AbortedError, Deadline, until } from './deadline.js';
import { keepEarlyData } from './early-data.js';
import { assertRfc1929, assertSocks4UserId } from './credentials.js';
import { releaseWhenDone } from './socks-client-release.js';
import { fromSocksError, UpstreamHandshakeError, UpstreamUnreachableError } from './socks5-errors.js';
import { handshakeFailure, watchFirstBytes, type FirstBytes, type Seen } from './socks-first-bytes.js';
import { boundAddress, boundHost, dialLiteral, normalizeIp, type Socks5UdpUpstream, type UpstreamDialer } from './socks5-udp.js';
import type { BindHandle, Destination, OutboundContext } from './types.js';

export type Socks5BindUpstream = Omit<Socks5UdpUpstream, 'remoteDns'> & {
  /** SOCKS version spoken; 5 when absent. */
  version?: 4 | 5;
};

type Peer = Awaited<ReturnType<BindHandle['accepted']>>;

/** Where the upstream that answers is, for a wildcard BND of `family` (undefined: either). */
export type LastHop = (family: 4 | 6 | undefined) => Promise<string>;

export interface Socks5BindDeps {
  connectTimeout: number;
  dial?: UpstreamDialer;
  /**
   * Through a chain the stream's far end is the first hop, not the upstream that listens:
   * a wildcard BND names this instead. Absent, it names the far end.
   */
  lastHop?: LastHop;
  /**
   * What DST.ADDR may be, as CONNECT's targets: `dest` as received, or (remote_dns false) the
   * addresses looked up here, of which the first is asked for (BIND expects one peer). Inside
   * the deadline, as CONNECT's lookup is.
   */
  targets?: (dest: Destination) => Promise<Destination[]>;
}

/** Resolves at the upstream's first reply; `accepted()` settles at its second. */
export async function openSocks5Bind(
  upstream: Socks5BindUpstream,
  dest: Destination,
  ctx: OutboundContext,
  deps: Socks5BindDeps,
): Promise<BindHandle> {
  const name = upstream.name ?? formatAddress(upstream);
  const deadline = new Deadline(ctx.signal, deps.connectTimeout);
  let tcp: Socket | undefined;
  let phase: Phase = 'resolve';
  let first: FirstBytes | undefined;
  try {
    // A client gone during the lookup is let go at once; the lookup, shared, runs on.
    const to = deps.targets ? (await until(deps.targets(dest), deadline.signal))[0]! : dest;
    phase = 'dial';
    tcp = await (deps.dial ?? ((signal: AbortSignal) => dialLiteral(upstream, signal)))(deadline.signal);
    phase = 'handshake';
    first = watchFirstBytes(tcp);
    return await handshake(tcp, upstream, name, to, deadline.signal, deps);
  } catch (err) {
    const ended = tcp?.readableEnded ?? false;
    tcp?.destroy();
    const seen = first && { version: upstream.version ?? 5, answered: first.answered(), ended };
    throw classify(err, name, phase, deadline, ctx, deps.connectTimeout, dest, seen);
  } finally {
    first?.stop();
    deadline.clear();
  }
}

type Phase = 'resolve' | 'dial' | 'handshake';

function classify(err: unknown, name: string, phase: Phase, deadline: Deadline, ctx: OutboundContext, ms: number, dest: Destination, seen?: Seen): GatewayError {
  if (ctx.signal.aborted) return new AbortedError(`upstream "${name}" BIND`, { cause: err });
  // No socket to be had: the gateway's shortage, not the upstream's fault.
  const shortage = asOutOfDescriptors(`upstream "${name}" BIND`, err);
  if (shortage) return shortage;
  if (phase === 'resolve') {
    // Still looking DST.ADDR up here: the upstream was never asked anything (as for CONNECT).
    if (deadline.timedOut) return new ConnectTimeoutError(`upstream "${name}" BIND for ${dest.host}`, ms);
    return err instanceof GatewayError ? err : new NameNotResolvedError(dest.host, 'lookup failed', { cause: err });
  }
  // The first reply asks no destination (RFC 1928 §4: the upstream only listens): silence until then is the upstream's own.
  // In the handshake: what the upstream sent says whether it was silent or of another kind.
  if (seen) return handshakeFailure(name, 'BIND', err, seen, deadline.timedOut, ms, 'BIND');
  if (deadline.timedOut) return new UpstreamUnreachableError(name, new ConnectTimeoutError(`upstream "${name}" BIND`, ms));
  return phase === 'dial' ? new UpstreamUnreachableError(name, err) : fromSocksError(name, err);
}

function handshake(tcp: Socket, upstream: Socks5BindUpstream, name: string, dest: Destination, signal: AbortSignal, deps: Socks5BindDeps): Promise<BindHandle> {
  const ms = deps.connectTimeout;
  const bnd = (remote: SocksRemoteHost | undefined): Promise<Destination> => bndOf(remote, tcp, deps.lastHop);
  return new Promise((resolve, reject) => {
    // A throw here rejects.
    if ((upstream.version ?? 5) === 5) assertRfc1929(name, upstream);
    else assertSocks4UserId(name, upstream.username);
    const client = new SocksClient({
      proxy: { host: upstream.host, port: upstream.port, type: upstream.version ?? 5, userId: upstream.username, password: upstream.password },
      command: 'bind',
      destination: dest,
      existing_socket: tcp,
      // Our deadline decides the first reply (connect_timeout from before the dial), the caller the
      // second (`socks` does not time out a BIND waiting for its peer). Its timer, never cleared,
      // holds a husk of the client until it fires.
      timeout: ms + 1_000,
    });
    let settlePeer: { resolve(p: Peer): void; reject(e: Error): void } | undefined;
    const accepted = new Promise<Peer>((res, rej) => {
      settlePeer = { resolve: res, reject: rej };
    });
    accepted.catch(() => {}); // observed through accepted(); a close before a peer is no crash
    const onAbort = (): void => {
      tcp.destroy();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    let bound = false;

    // A reply whose address type RFC 1928 §6 does not have comes from `socks` with no
    // address, its bytes left in the stream: not a reply (as for CONNECT, socks5.ts).
    const unknownType = (info: { remoteHost?: unknown }): boolean => (upstream.version ?? 5) === 5 && info.remoteHost === undefined;
    client.once('bound', (info) => {
      if (unknownType(info)) {
        releaseWhenDone(client);
        signal.removeEventListener('abort', onAbort);
        return reject(new UpstreamHandshakeError(name, 'BIND reply with an unknown address type'));
      }
      bound = true;
      void bnd(info.remoteHost).then(
        (listening) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) return reject(signal.reason); // out of time while looking the last hop up
          resolve({
            listening,
            accepted: () => accepted,
            close: () => {
              if (settlePeer) tcp.destroy(); // handed out sockets belong to the relay
              settlePeer?.reject(new Error('BIND closed before a peer connected'));
              settlePeer = undefined;
            },
          });
        },
        (err: unknown) => {
          signal.removeEventListener('abort', onAbort);
          tcp.destroy();
          reject(err);
        },
      );
    });
    client.once('established', (info) => {
      releaseWhenDone(client);
      const s = settlePeer;
      settlePeer = undefined;
      if (!s) return;
      if (unknownType(info)) {
        tcp.destroy();
        return s.reject(new UpstreamHandshakeError(name, 'BIND reply with an unknown address type'));
      }
      // Early data is caught now, whatever the BND waits for: `socks` re-emits it next turn.
      void Promise.all([bnd(info.remoteHost), keepEarlyData(tcp)]).then(
        ([peer, head]) => s.resolve(head ? { socket: tcp, peer, head } : { socket: tcp, peer }),
        (err: unknown) => {
          tcp.destroy();
          s.reject(err instanceof Error ? err : new Error(String(err)));
        },
      );
    });
    client.once('error', (err) => {
      releaseWhenDone(client);
      signal.removeEventListener('abort', onAbort);
      if (!bound) return reject(err);
      settlePeer?.reject(fromSocksError(name, err));
      settlePeer = undefined;
    });
    client.connect(tcp);
    // A hop's stream arrives paused (see keepEarlyData); `socks` only listens for 'data'.
    tcp.resume();
  });
}

/**
 * A BND as the client must see it. A wildcard means "where you reached me" (RFC 1928 §6; the
 * SOCKS4 BIND reply says so too): the stream's far end, or through a chain the last hop.
 */
async function bndOf(remote: SocksRemoteHost | undefined, tcp: Socket, lastHop: LastHop | undefined): Promise<Destination> {
  if (lastHop === undefined || boundHost(remote) !== undefined) return boundAddress(remote, tcp);
  return { host: await lastHop(wildcardFamily(remote)), port: remote?.port ?? 0 };
}

/** 0.0.0.0 (which `socks` turns into no host) listens on IPv4, `::` on IPv6; a name says nothing. */
function wildcardFamily(remote: SocksRemoteHost | undefined): 4 | 6 | undefined {
  const host = remote?.host;
  if (host === undefined || host === '0.0.0.0') return 4;
  return isIP(host) === 6 && normalizeIp(host) === '::' ? 6 : undefined;
}

/**
 * A chain's last hop as an address a client can connect to: its configured host, resolved
 * here when a name (dns.hosts, the cache), as an address of the family it listens on when it
 * has one. The first hop may have resolved it for itself; the gateway never saw that answer.
 */
export async function lastHopAddress(host: string, dns: DnsResolver, family: 4 | 6 | undefined): Promise<string> {
  const addresses = await dns.lookup(host);
  const picked = addresses.find((a) => a.family === family) ?? addresses[0];
  if (picked === undefined) throw new NameNotResolvedError(host, 'no addresses');
  return picked.address;
}
