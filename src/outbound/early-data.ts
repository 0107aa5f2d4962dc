import type { Socket } from 'node:net';

/**
 * `socks` re-emits bytes that arrived together with a reply as a 'data' event one turn
 * later (setImmediate) and resumes the socket: with no listener yet, a server-speaks-first
 * destination (SSH, SMTP) would lose its banner. Catch them and pause the socket. They go
 * back in front of the stream for whoever reads next (pipe resumes it); when the stream
 * has already ended (banner then FIN, "421 busy"), they cannot be put back and are
 * returned for the caller to deliver first.
 */
export async function keepEarlyData(socket: Socket): Promise<Buffer | undefined> {
  const early: Buffer[] = [];
  const onData = (b: Buffer): void => {
    early.push(b);
  };
  socket.on('data', onData);
  guardErrors(socket);
  await new Promise<void>((resolve) => setImmediate(resolve));
  socket.pause();
  socket.off('data', onData);
  if (early.length === 0) return undefined;
  if (socket.readableEnded) return Buffer.concat(early);
  for (let i = early.length - 1; i >= 0; i--) socket.unshift(early[i]!);
  return undefined;
}

/** The one no-op every hop shares, so that a socket carries it once. */
function ignoreError(): void {}

/**
 * Until the relay starts nobody listens for 'error'; an error in between must not crash the
 * process (the relay sees the close all the same). Added once per socket: a chain hands the
 * same socket through every hop's handshake, and one listener per hop made ten hops a
 * MaxListenersExceededWarning ("memory leak detected") on every connection.
 */
export function guardErrors(socket: Socket): void {
  if (!socket.listeners('error').includes(ignoreError)) socket.on('error', ignoreError);
}
