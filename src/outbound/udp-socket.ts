// What connecting a dgram socket takes on Linux: Node says neither whether a socket is
// connected nor how it was bound, and both decide what connect() and disconnect() do.

import { createSocket, type Socket } from 'node:dgram';
import { literalLookup } from '../dns/literal-lookup.js';

/** How often a port the kernel chose is asked for again before giving up (another socket took it meanwhile). */
const BIND_TRIES = 3;

/** The peer `socket` is connected to, as the kernel names it (the form of a datagram's source); undefined when not connected. */
export function connectedPeer(socket: Socket): { host: string; port: number } | undefined {
  try {
    const { address, port } = socket.remoteAddress();
    return { host: address, port };
  } catch {
    return undefined;
  }
}

/**
 * Binds `socket` (unbound, with literalLookup) to the wildcard address and a port the kernel
 * chooses, asked for by number. A socket bound to port 0 loses its port when it disconnects
 * (Linux __udp_disconnect unhashes a socket whose port was not given), so the destinations it
 * still talks to would answer a closed port; a port given by number stays. The port comes from
 * a probe socket bound to 0 and closed just before: false if another socket takes it in
 * between every time, leaving `socket` unbound.
 */
export function bindKeepingPort(socket: Socket, family: 4 | 6): boolean {
  const type = family === 4 ? 'udp4' : 'udp6';
  const address = family === 4 ? '0.0.0.0' : '::';
  for (let i = 0; i < BIND_TRIES; i++) {
    const probe = createSocket({ type, lookup: literalLookup });
    const port = bindNow(probe, address, 0) ? probe.address().port : 0;
    probe.close(); // closes its descriptor before returning: the port is free again
    if (port !== 0 && bindNow(socket, address, port)) return true;
  }
  return false;
}

/** bind() is synchronous for an IP literal with literalLookup; a failure is emitted at once. */
function bindNow(socket: Socket, address: string, port: number): boolean {
  let failed = false;
  const onError = (): void => {
    failed = true;
  };
  socket.once('error', onError);
  socket.bind({ address, port, exclusive: true });
  socket.off('error', onError);
  return !failed;
}
