// `direct`: the gateway connects to the destination itself, with the router's
// answer when it already resolved the name, else through the DNS cache.

import { connectHappyEyeballs } from '../dns/happy-eyeballs.js';
import type { DnsResolver } from '../dns/types.js';
import { GatewayError, toRep } from '../errors.js';
import type { Connection, Destination, Outbound, OutboundContext } from './types.js';

export interface DirectDeps {
  dns: DnsResolver;
  connectTimeout: number; // ms
}

export function createDirectOutbound(deps: DirectDeps): Outbound {
  async function connect(dest: Destination, ctx: OutboundContext): Promise<Connection> {
    const addresses = ctx.resolved ?? (await deps.dns.lookup(dest.host));
    try {
      const socket = await connectHappyEyeballs(addresses, dest.port, {
        timeout: deps.connectTimeout,
        signal: ctx.signal,
      });
      return { socket };
    } catch (err) {
      if (err instanceof GatewayError || ctx.signal.aborted) throw err;
      // An errno from the last attempt: keep its reply code, name the destination, keep the cause.
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new GatewayError('GW_ERR_CONNECT', `${dest.host}:${dest.port}: ${code}`, toRep(err), { cause: err });
    }
  }

  return { name: 'direct', connect, close: async () => {} };
}
