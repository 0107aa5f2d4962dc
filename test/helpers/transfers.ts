// Transfers whose every byte is counted and hashed: a source that sends its bytes to whoever
// connects, a sink that takes them, a reader that counts as it goes (the bandwidth tests).
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { listenTracked } from './servers.js';

export function payload(n: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

/** Sends `data` to whoever connects, then ends. */
export async function startSource(data: Buffer) {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.resume();
    s.end(data);
  });
  return listenTracked(server);
}

/** Counts and hashes what arrives; `done` once a client has ended its side. */
export async function startSink() {
  let received = 0;
  const hash = createHash('sha256');
  let ended!: () => void;
  const done = new Promise<void>((resolve) => (ended = resolve));
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    s.on('data', (c: Buffer) => {
      received += c.length;
      hash.update(c);
    });
    s.on('end', () => {
      s.end();
      ended();
    });
  });
  return { ...(await listenTracked(server)), received: () => received, digest: () => hash.digest('hex'), done };
}

/** Reads `socket` to its end, counting as it goes; `count()` is live. */
export function drain(socket: Socket): { count: () => number; digest: Promise<string> } {
  let n = 0;
  const hash = createHash('sha256');
  socket.on('data', (c: Buffer) => {
    n += c.length;
    hash.update(c);
  });
  socket.resume();
  const digest = Promise.race([once(socket, 'end'), once(socket, 'close')]).then(() => hash.digest('hex'));
  return { count: () => n, digest };
}

export const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
