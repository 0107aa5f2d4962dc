// `direct`: the gateway connects to the destination itself, with the router's
// answer when it already resolved the name, else through the DNS cache. Its UDP channel
// sends with the same resolver and guard: both come from the config that built it. Its BIND
// listens on this host, where the client's connection arrived.

import { isIP } from 'node:net';
import { connectHappyEyeballs } from '../dns/happy-eyeballs.js';
import { addressesOf, literalAddress } from '../dns/resolver.js';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { GatewayError, Rep, toRep } from '../errors.js';
import { formatAddress } from '../protocol/address.js';
import { bindDirect } from './bind-direct.js';
import { until } from './deadline.js';
import { EgressDeniedError, OPEN_EGRESS, type EgressGuard } from './egress.js';
import { openDirectUdp } from './udp-direct.js';
import type { BindHandle, Connection, Destination, Outbound, OutboundContext, UdpChannel } from './types.js';

export interface DirectDeps {
  dns: DnsResolver;
  connectTimeout: number; // ms
  /** Addresses never dialed unless the deciding rule's own cidrs name them. */
  egress?: EgressGuard;
}

function literalAddresses(host: string): ResolvedAddress[] | undefined {
  const a = literalAddress(host);
  return a && [a];
}

export function createDirectOutbound(deps: DirectDeps): Outbound {
  /**
   * The addresses of `dest`'s name: the rules' answer when they looked, else the DNS cache's.
   * A client gone during the lookup is let go at once; the lookup, shared, runs on for the others.
   */
  function lookUp(dest: Destination, ctx: OutboundContext): Promise<ResolvedAddress[]> {
    return until(addressesOf(deps.dns, dest.host, ctx), ctx.cancel ?? ctx.signal);
  }

  async function connect(dest: Destination, ctx: OutboundContext): Promise<Connection> {
    // The dial only listens for the request's end: the connection itself, where it can say so.
    const cancel = ctx.cancel ?? ctx.signal;
    // An IP literal needs no lookup and no await (most crawler traffic arrives resolved).
    const resolved = ctx.resolved ?? literalAddresses(dest.host) ?? (await lookUp(dest, ctx));
    // The guard sees exactly what will be dialed: no second lookup can swap the answer.
    const guard = deps.egress ?? OPEN_EGRESS;
    const addresses = resolved.filter((a) => !guard.denies(a.address, ctx.egressLift));
    if (addresses.length === 0) {
      guard.denied(ctx.command ?? 'connect');
      throw new EgressDeniedError(resolved[0]?.address ?? dest.host);
    }
    try {
      const socket = await connectHappyEyeballs(addresses, dest.port, { timeout: deps.connectTimeout, signal: cancel });
      return { socket };
    } catch (err) {
      if (err instanceof GatewayError || cancel.aborted) throw err;
      // An errno from the last attempt: keep its reply code, name the destination, keep the cause.
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new GatewayError('GW_ERR_CONNECT', `${formatAddress(dest)}: ${code}`, toRep(err), { cause: err });
    }
  }

  async function openUdp(ctx: OutboundContext): Promise<UdpChannel> {
    return openDirectUdp({ dns: deps.dns, log: ctx.log, budget: ctx.udpBudget, egress: deps.egress });
  }

  /**
   * BIND (RFC 1928 §4): listens where the client's connection arrived. DST.ADDR checks the
   * peer: a name by its addresses, looked up as CONNECT's is; one that does not exist gets 0x04.
   */
  async function bind(dest: Destination, ctx: OutboundContext): Promise<BindHandle> {
    const host = ctx.arrivedAt;
    if (host === undefined) throw new GatewayError('GW_ERR_BIND_LOCAL', 'BIND: no local address to listen on', Rep.GENERAL_FAILURE);
    if (isIP(dest.host) === 0) return bindDirect({ host, expect: dest, resolved: await lookUp(dest, ctx), log: ctx.log });
    return bindDirect({ host, expect: dest, log: ctx.log });
  }

  return { name: 'direct', samePath: true, connect, openUdp, bind, close: async () => {} };
}
