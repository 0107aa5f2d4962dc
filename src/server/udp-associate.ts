import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { literalLookup } from '../dns/literal-lookup.js';
import { isIPv6 } from 'node:net';
import { Rep } from '../errors.js';
import { ASSOCIATION_UDP_BYTES } from '../outbound/byte-budget.js';
import { CLIENT_LEFT, type CommandContext } from './context.js';
import { unmapped } from '../protocol/address.js';
import { UdpAssociation } from './udp-association.js';

/** Destinations whose routing decision one association remembers. */
export const MAX_DESTINATIONS = 1024;

/**
 * Keepalive probes on the control connection start after this much silence. Nothing else
 * crosses it, and answers keep the idle timer from firing, so without them a client gone
 * without a FIN or RST (powered off, its NAT mapping dropped) kept its association for as
 * long as a destination sent to it.
 */
const CONTROL_KEEPALIVE_MS = 60_000;

/**
 * UDP ASSOCIATE (RFC 1928 §7): a relay socket on the address the client's TCP connection
 * arrived at (so BND.ADDR is never a wildcard), the reply naming it, then datagrams both
 * ways until the control connection closes or the association goes idle.
 */
export async function handleUdpAssociate(ctx: CommandContext): Promise<void> {
  const { client, front, record, snapshot } = ctx;
  const local = unmapped(client.localAddress ?? '127.0.0.1');
  const relay = await bindRelay(local);
  try {
    if (client.destroyed) {
      record.error ??= CLIENT_LEFT;
      return;
    }
    const port = relay.address().port;
    const bound = { host: advertised(snapshot.config.udp.advertise, local), port };
    front.granted(() => bound);
    record.rep = Rep.SUCCEEDED;
    client.setKeepAlive(true, CONTROL_KEEPALIVE_MS);
    const association = new UdpAssociation(ctx, relay, {
      // The client's address, which a trusted PROXY header names (not the balancer's).
      clientHost: ctx.source, // unmapped already (ClientConnection.source)
      clientPort: ctx.dest.port,
      idleTimeout: snapshot.config.limits.udp_idle_timeout,
      maxQueuedBytes: ASSOCIATION_UDP_BYTES,
      maxDestinations: MAX_DESTINATIONS,
    });
    record.udp = association.stats;
    const end = await association.run();
    if (end !== 'closed') record.error = end === 'idle' ? 'udp idle timeout' : 'udp relay socket error';
  } finally {
    closeQuietly(relay);
  }
}

/**
 * `udp.advertise` names the relays of its own family only. A relay takes the family of the
 * address the client came to, and a client sends to the family it is given: an IPv4 address
 * behind NAT handed to an IPv6 client (on "::" or beside a ::1 listener) would send its
 * datagrams where no relay of its family listens. The other family keeps the relay's own.
 */
function advertised(advertise: string | undefined, local: string): string {
  return advertise !== undefined && isIPv6(advertise) === isIPv6(local) ? advertise : local;
}

/** Binds port 0 on `host`; rejects with the errno (EADDRNOTAVAIL → 0x03) before any reply. */
function bindRelay(host: string): Promise<DgramSocket> {
  const relay = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4', ipv6Only: isIPv6(host), lookup: literalLookup });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      relay.close();
      reject(err);
    };
    relay.once('error', onError);
    relay.bind({ address: host, port: 0, exclusive: true }, () => {
      relay.off('error', onError);
      resolve(relay);
    });
  });
}

function closeQuietly(socket: DgramSocket): void {
  try {
    socket.close();
  } catch {
    // already closed
  }
}
