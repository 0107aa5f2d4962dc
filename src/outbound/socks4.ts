// A SOCKS4 upstream, or SOCKS4a when `remote_dns` (the name goes to the proxy), through the
// `socks` package on a stream from `via` or our own connector. SOCKS4 carries IPv4 only: an
// IPv6 destination gets 0x08. It has a USERID and no password; BIND works as in SOCKS5,
// UDP does not exist.

import { isIP } from 'node:net';
import type { Socks4UpstreamConfig } from '../config/types.js';
import { GatewayError, Rep } from '../errors.js';
import { peerText, unmapped } from '../protocol/address.js';
import { assertSocks4UserId, credentialsFor } from './credentials.js';
import { assertSendable, createProxyOutbound, heldUntilClose, proxyDialer, resolveHere, type ProxyDeps } from './proxy-outbound.js';
import { lastHopAddress, openSocks5Bind, type LastHop } from './socks5-bind.js';
import { fromSocksError } from './socks5-errors.js';
import { socksHandshake } from './socks5.js';
import type { UpstreamOutbound } from './stats.js';
import type { BindHandle, Destination, OutboundContext } from './types.js';

export function createSocks4Outbound(name: string, cfg: Socks4UpstreamConfig, deps: ProxyDeps): UpstreamOutbound {
  const proxy = { host: cfg.host, port: cfg.port };

  /** What SOCKS4 can ask for: an IPv4 address, or (SOCKS4a) a name. */
  async function targets(dest: Destination, ctx: OutboundContext): Promise<Destination[]> {
    if (isIP(dest.host) === 6) {
      const v4 = asIPv4(dest.host);
      if (v4 === undefined) throw new IPv6NotCarriedError(name, dest.host);
      return [{ host: v4, port: dest.port }];
    }
    if (isIP(dest.host) === 4) return [dest];
    return cfg.remote_dns ? [assertSendable(dest)] : resolveHere(dest, ctx, deps.dns, 4);
  }

  // As for SOCKS5: the control connection goes the way CONNECT's does, through `via` too;
  // the peer connects to the upstream's own listening address (for a wildcard BND through a
  // chain, this upstream's host rather than the first hop's).
  const dial = proxyDialer(proxy, deps);
  const lastHop: LastHop | undefined = deps.via ? (family) => lastHopAddress(proxy.host, deps.dns, family) : undefined;
  const bind = async (dest: Destination, ctx: OutboundContext): Promise<BindHandle> => {
    const { username } = credentialsFor({ username: cfg.username }, ctx);
    const dialer = (signal: AbortSignal) => dial(signal, ctx).then(heldUntilClose);
    // DST.ADDR as CONNECT would send it; a lookup here runs inside BIND's deadline and ends with the client.
    return openSocks5Bind({ ...proxy, username, name, version: 4 }, dest, ctx, { connectTimeout: deps.connectTimeout, dial: dialer, lastHop, targets: (d) => targets(d, ctx) });
  };
  const out: UpstreamOutbound = createProxyOutbound(name, { ...proxy, username: cfg.username }, {
    targets,
    // SOCKS4 has no password: only the USERID goes out. Nor a greeting: the request is the
    // first thing we send, so a proxy that took our connection is alive, and silence from
    // then on is the destination's (0x06, not a member fault), as after a SOCKS5 CONNECT.
    handshake: (socket, to, run) => {
      assertSocks4UserId(name, run.credentials.username);
      run.heard();
      return socksHandshake(4, { ...proxy, name }, socket, to, { ...run, credentials: { username: run.credentials.username } }, deps.connectTimeout);
    },
    fromError: fromSocksError,
  }, deps, { bind });
  // A name is carried (SOCKS4a, or resolved here); whether it has IPv4 addresses shows only at the dial.
  out.carries = (dest) => isIP(dest.host) !== 6 || asIPv4(dest.host) !== undefined;
  return out;
}

/** ::ffff:a.b.c.d is an IPv4 address: sent as one, as SOCKS5's codec does (toWire); undefined for any other IPv6 address. */
function asIPv4(v6: string): string | undefined {
  const v4 = unmapped(peerText(v6));
  return isIP(v4) === 4 ? v4 : undefined;
}

/** SOCKS4 has no IPv6 form (not even in 4a's name field: a literal there is not a name). */
class IPv6NotCarriedError extends GatewayError {
  constructor(upstream: string, host: string) {
    super('GW_ERR_UPSTREAM_FAMILY', `upstream "${upstream}" (SOCKS4) cannot carry IPv6 address ${host}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  }
}
