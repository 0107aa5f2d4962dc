// Direct BIND (RFC 1928 §4): the gateway listens for the one connection the client's
// application protocol (FTP active mode, say) tells a server to open back to it.

import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { isIP, createServer, type AddressInfo, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ResolvedAddress } from '../dns/types.js';
import { peerText, unmapped } from '../protocol/address.js';
import type { BindHandle, Destination } from './types.js';

export interface DirectBindOptions {
  /**
   * Where to listen: the address the client's own connection arrived at, port 0 (unless no
   * admitted peer is of its family, see listenHost).
   */
  host: string;
  /** RFC 1928 §4: DST.ADDR "is used to check" the peer; an IP (not a wildcard) admits only itself. */
  expect?: Destination;
  /** When `expect` is a name: its addresses, the ones a peer may come from. */
  resolved?: readonly ResolvedAddress[];
  log?: Logger;
}

export async function bindDirect(opts: DirectBindOptions): Promise<BindHandle> {
  const allowed = expectedPeers(opts.expect, opts.resolved);
  const host = await listenHost(opts.host, allowed);
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  let settle: { resolve(v: { socket: Socket; peer: Destination }): void; reject(e: Error): void } | undefined;
  const accepted = new Promise<{ socket: Socket; peer: Destination }>((resolve, reject) => {
    settle = { resolve, reject };
  });
  accepted.catch(() => {}); // observed by whoever calls accepted(); closing early is not a crash
  const done = (): void => {
    settle = undefined;
    server.close();
  };

  server.on('connection', (socket: Socket) => {
    const peer = { host: unmapped(socket.remoteAddress ?? ''), port: socket.remotePort ?? 0 };
    if (!settle || (allowed !== undefined && !allowed.has(peer.host))) {
      opts.log?.debug({ peer, allowed }, 'BIND: connection from an unexpected peer refused');
      socket.destroy();
      return;
    }
    const s = settle;
    done(); // one peer per BIND
    s.resolve({ socket, peer });
  });
  server.on('error', (err) => {
    const s = settle;
    done();
    s?.reject(err);
  });

  server.listen({ host, port: 0, exclusive: true });
  await once(server, 'listening'); // rejects on a listen error
  const a = server.address() as AddressInfo;
  return {
    listening: { host: unmapped(a.address), port: a.port },
    accepted: () => accepted,
    close(): void {
      const s = settle;
      done();
      s?.reject(new Error('BIND closed before a peer connected'));
    },
  };
}

/** The addresses a peer may come from; undefined admits any (no DST.ADDR, or a wildcard). */
function expectedPeers(dest: Destination | undefined, resolved: readonly ResolvedAddress[] | undefined): ReadonlySet<string> | undefined {
  if (!dest) return undefined;
  // A name admits its addresses, not anyone: it checks the peer as an address does.
  if (isIP(dest.host) === 0) return resolved && new Set(resolved.map((a) => unmapped(a.address)));
  // Compared with the peer's address as Node gives it: DST.ADDR as text may be in any form.
  const host = unmapped(peerText(dest.host));
  return host === '0.0.0.0' || host === '::' ? undefined : new Set([host]);
}


/**
 * The client's local address, unless every admitted peer is of the other family: a peer
 * cannot connect across families (an IPv4 peer never reaches ::1), so such a BIND could only
 * time out. Then the address this host would reach the first peer from; a peer it has no
 * route to fails with that errno (0x03/0x04).
 */
async function listenHost(local: string, allowed: ReadonlySet<string> | undefined): Promise<string> {
  if (allowed === undefined || allowed.size === 0) return local;
  const family = isIP(local);
  let first: string | undefined;
  for (const peer of allowed) {
    if (isIP(peer) === family) return local;
    first ??= peer;
  }
  return sourceToward(first!);
}

/** The source address the kernel picks toward `peer`: a connected UDP socket, nothing sent. */
async function sourceToward(peer: string): Promise<string> {
  const s = createSocket(isIP(peer) === 6 ? 'udp6' : 'udp4');
  try {
    s.connect(9, peer);
    await once(s, 'connect'); // rejects with the socket's error (ENETUNREACH, say)
    return unmapped(s.address().address);
  } finally {
    s.close();
  }
}
