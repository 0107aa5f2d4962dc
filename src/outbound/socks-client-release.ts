// A `socks` client's hold on its connection, let go once its handshake is over.

import type { SocksClient } from 'socks';

/** The fields of a SocksClient that hold the connection (private in its types). */
interface SocksClientHolds {
  socket: unknown;
  options: unknown;
  receiveBuffer: unknown;
}

/**
 * `socks` starts a timer per handshake that it never clears: it fires at `timeout` and finds
 * the handshake over (state established or error, or a BIND waiting for its peer, when it
 * does nothing). Until then it holds the client, and the client held the socket, its options
 * (the upstream's password among them) and a 4 KB receive buffer: about 6 KB for every
 * connection through an upstream, for connect_timeout + 1 s (11 s by default), hundreds of MB
 * at a few thousand connections a second. Emptied once the handshake is over, it holds a
 * husk (about 1 KB). Called on the turn after the last event: `socks` hands on the bytes it
 * read past the reply from a setImmediate of its own.
 */
export function releaseWhenDone(client: SocksClient): void {
  client.removeAllListeners();
  setImmediate(letGo, client);
}

function letGo(client: SocksClient): void {
  Object.assign(client as unknown as SocksClientHolds, { socket: undefined, options: undefined, receiveBuffer: undefined });
}
