// A SOCKS5 upstream (RFC 1928, RFC 1929 auth) through the `socks` package. The TCP
// stream to the upstream comes from `via` or our own connector (proxy-outbound.ts), and
// `socks` only runs the handshake on it (`existing_socket`): that keeps the real errno of
// an unreachable upstream.

import type { Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import type { Socks5UpstreamConfig } from '../config/types.js';
import type { Address } from '../protocol/types.js';
import { assertRfc1929, credentialsFor } from './credentials.js';
import { keepEarlyData } from './early-data.js';
import { releaseWhenDone } from './socks-client-release.js';
import { assertSendable, createProxyOutbound, heldUntilClose, proxyDialer, resolveHere, type Established, type HandshakeRun, type ProxyCommands, type ProxyDeps } from './proxy-outbound.js';
import { lastHopAddress, openSocks5Bind, type LastHop } from './socks5-bind.js';
import { failedOnReply, fromSocksError, UpstreamHandshakeError } from './socks5-errors.js';
import { openSocks5Udp, type UpstreamDialer } from './socks5-udp.js';
import { FIRST_BYTES, unanswered, wrongSocksServer } from './socks-first-bytes.js';
import type { UpstreamOutbound } from './stats.js';
import type { BindHandle, Destination, OutboundContext, UdpChannel } from './types.js';

export type Socks5Deps = ProxyDeps;

export function createSocks5Outbound(name: string, cfg: Socks5UpstreamConfig, deps: Socks5Deps): UpstreamOutbound {
  const proxy = { host: cfg.host, port: cfg.port };
  /** What DST.ADDR may be: the name as received (remote_dns), or addresses looked up here. */
  const targets = async (dest: Destination, ctx: OutboundContext): Promise<Destination[]> =>
    cfg.remote_dns ? [assertSendable(dest)] : resolveHere(dest, ctx, deps.dns);
  // Both reach the upstream with the same dialer as CONNECT (through `via`, or dns.hosts, the
  // cache and the guard). BIND's control connection runs through a chain as CONNECT's does:
  // the peer connects to the upstream's own listening address, not through the gateway.
  // UDP ASSOCIATE talks to the upstream's relay directly, which a chain of TCP hops cannot
  // carry: a chained upstream has no openUdp (its datagrams are dropped as unsupported).
  const upstream = (ctx: OutboundContext) => ({ ...proxy, ...credentialsFor({ username: cfg.username, password: cfg.password }, ctx), name });
  const dial = proxyDialer(proxy, deps);
  const dialFor = (ctx: OutboundContext): UpstreamDialer => (signal) => dial(signal, ctx).then(heldUntilClose);
  // Through a chain, a wildcard BND names this upstream, not the first hop the stream reaches.
  const lastHop: LastHop | undefined = deps.via ? (family) => lastHopAddress(proxy.host, deps.dns, family) : undefined;
  const commands: ProxyCommands = {
    // BIND asks for the DST.ADDR CONNECT would.
    bind: (dest: Destination, ctx: OutboundContext): Promise<BindHandle> =>
      openSocks5Bind(upstream(ctx), dest, ctx, { connectTimeout: deps.connectTimeout, dial: dialFor(ctx), lastHop, targets: (d) => targets(d, ctx) }),
  };
  if (!deps.via) {
    commands.openUdp = (ctx: OutboundContext): Promise<UdpChannel> =>
      openSocks5Udp({ ...upstream(ctx), remoteDns: cfg.remote_dns }, ctx, { connectTimeout: deps.connectTimeout, dns: deps.dns, dial: dialFor(ctx) });
  }
  const out: UpstreamOutbound = createProxyOutbound(name, { ...proxy, username: cfg.username, password: cfg.password }, {
    targets,
    handshake: (socket, to, run) => {
      assertRfc1929(name, run.credentials);
      return socksHandshake(5, { ...proxy, name }, socket, to, run, deps.connectTimeout);
    },
    fromError: fromSocksError,
  }, deps, commands);
  return out;
}

/**
 * RFC 1928 §3–§6 (or SOCKS4/4a) CONNECT on an open stream to the upstream; resolves with its
 * BND address and bytes that could not wait in the stream.
 */
export async function socksHandshake(
  version: 4 | 5,
  proxy: { host: string; port: number; name: string },
  socket: Socket,
  to: Destination,
  run: HandshakeRun,
  connectTimeout: number,
): Promise<Established> {
  if (socket.destroyed) throw new Error('Socket closed');
  const onAbort = (): void => {
    socket.destroy();
  };
  run.signal.addEventListener('abort', onAbort, { once: true });
  // The first bytes the upstream sends: they say when it has answered all that comes before
  // our request (its method choice, and RFC 1929's status), so that from then on a timeout is
  // about the destination; and `socks` reads a reply whose VER is not 5 as a refusal with its
  // REP, which only these bytes tell apart.
  const first = Buffer.alloc(FIRST_BYTES);
  let got = 0;
  // Said if it stays silent: what it was not answering (SOCKS4's request is covered by heard()).
  if (version === 5) run.asking(unanswered(5, 0));
  const onData = (chunk: Buffer): void => {
    if (got === 0) run.asking(unanswered(5, chunk.length));
    got += chunk.copy(first, got);
    const at = replyAt(version, first, got);
    if (at !== undefined && got >= at) run.heard();
    if (got === FIRST_BYTES) socket.off('data', onData);
  };
  socket.on('data', onData);
  try {
    // A hop's stream arrives paused (see keepEarlyData); `socks` only listens for 'data'.
    socket.resume();
    const { username, password } = run.credentials;
    const client = new SocksClient({
      proxy: { host: proxy.host, port: proxy.port, type: version, userId: username, password },
      command: 'connect',
      destination: to,
      existing_socket: socket,
      // Our deadline decides (connect_timeout from before the dial, for every hop and address
      // of the attempt); this only keeps `socks` from timing out first. Its timer is never
      // cleared, so it is no longer than that: it holds a husk of the client until it fires.
      timeout: connectTimeout + 1_000,
    });
    const info = await established(client, socket);
    // A reply whose address type `socks` does not know (RFC 1928 §6 has 1, 3, 4) comes back
    // "established" with no address, its bytes left in the stream for the client: not a reply.
    if (version === 5 && info.remoteHost === undefined) throw new UpstreamHandshakeError(proxy.name, 'reply with an unknown address type');
    const head = await keepEarlyData(socket);
    return { socket, bound: boundOf(info.remoteHost), head };
  } catch (err) {
    // Another kind of server, or one that closed at our first bytes: said so, rather than in
    // `socks`'s words for whichever step its bytes then failed.
    const wrong = wrongSocksServer(version, first.subarray(0, got), socket.readableEnded);
    if (wrong !== undefined && !run.signal.aborted) throw new UpstreamHandshakeError(proxy.name, wrong);
    const ver = version === 5 && failedOnReply(err) ? replyVersion(first, got) : undefined;
    if (ver !== undefined && ver !== 5) throw new UpstreamHandshakeError(proxy.name, `reply with version ${ver}`);
    throw err;
  } finally {
    run.signal.removeEventListener('abort', onAbort);
    socket.off('data', onData);
  }
}

/** What SocksClient.createConnection does, with the client kept: it lets go of the connection once the handshake is over. */
function established(client: SocksClient, socket: Socket): Promise<{ remoteHost?: SocksRemoteHost | undefined }> {
  return new Promise<{ remoteHost?: SocksRemoteHost | undefined }>((resolve, reject) => {
    client.once('established', resolve);
    client.once('error', reject);
    client.connect(socket);
  }).finally(() => releaseWhenDone(client));
}

/**
 * Where the reply to our request starts in the upstream's bytes: SOCKS4 says nothing before
 * it; SOCKS5 first chooses a method (RFC 1928 §3), then answers RFC 1929 auth if it chose
 * 0x02. Undefined until the method choice has come.
 */
function replyAt(version: 4 | 5, first: Buffer, got: number): number | undefined {
  if (version === 4) return 0;
  if (got < 2) return undefined;
  return first[1] === 0x02 ? 4 : 2;
}

/** RFC 1928 §6: VER of the upstream's reply to our request, when its bytes have come. */
function replyVersion(first: Buffer, got: number): number | undefined {
  const at = replyAt(5, first, got);
  return at !== undefined && got > at ? first[at] : undefined;
}

function boundOf(remote: SocksRemoteHost | undefined): Address | undefined {
  // `socks` swaps a 0.0.0.0 BND for `proxy.ipaddress`, which we never set: undefined then.
  const host: string | undefined = remote?.host;
  if (!host || host === '0.0.0.0' || host === '::') return undefined;
  return { host, port: remote?.port ?? 0 };
}
