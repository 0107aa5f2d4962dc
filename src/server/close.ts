import type { Socket } from 'node:net';

/** How long a refused or failed client may take to read our last bytes before it is cut off. */
const LINGER_MS = 2_000;

/** Clients already closing: a second closeClient must not add a timer and listeners again. */
const closing = new WeakSet<Socket>();

/**
 * Sends the last bytes, half-closes, and cuts the client off if it does not close in time.
 * Idempotent: only the first call sends and arms the linger timer.
 */
export function closeClient(client: Socket, bytes?: Buffer | string): void {
  if (client.destroyed || closing.has(client)) return;
  closing.add(client);
  if (bytes) client.end(bytes);
  else client.end();
  const timer = setTimeout(() => client.destroy(), LINGER_MS);
  timer.unref();
  client.once('close', () => clearTimeout(timer));
  // Whatever the client still sends is discarded; it must not fill buffers.
  client.resume();
}

/** Resolves once the socket is closed. */
export function closed(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => socket.on('close', () => resolve())); // emitted once; once() costs a wrapper
}
