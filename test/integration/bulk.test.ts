import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { gatewayTo, socksConnect } from '../helpers/index.js';

const SIZE = 64 * 1024 * 1024;

/**
 * Resolves on `event`; rejects if the socket closes first. A Writable that is ending never
 * emits 'drain' again, and a socket can close without 'end' or 'error': a bare once()
 * would wait forever.
 */
function eventOrClose(s: Socket, event: 'drain' | 'end'): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error): void => {
      s.off(event, onEvent);
      s.off('close', onClose);
      s.off('error', done);
      if (err) reject(err);
      else resolve();
    };
    const onEvent = (): void => done();
    const onClose = (): void => done(new Error(`socket closed while waiting for '${event}'`));
    s.once(event, onEvent);
    s.once('close', onClose);
    s.once('error', done);
  });
}

/** Writes `total` pseudo-random bytes with backpressure, hashing them; ends the socket after. */
async function sendHashed(s: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(256 * 1024);
  for (let sent = 0, i = 0; sent < total; sent += block.length, i++) {
    block.writeUInt32LE(i, 0); // no two blocks alike: reordering would show
    const chunk = Buffer.from(block.subarray(0, Math.min(block.length, total - sent))); // a copy: write() keeps a reference
    hash.update(chunk);
    if (!s.write(chunk)) await eventOrClose(s, 'drain');
  }
  s.end();
  return hash.digest('hex');
}

function receiveHashed(s: Socket): Promise<{ hash: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  s.on('data', (c: Buffer) => {
    hash.update(c);
    bytes += c.length;
  });
  return eventOrClose(s, 'end').then(() => ({ hash: hash.digest('hex'), bytes }));
}

/**
 * A SOCKS client whose socket keeps writing after the server's FIN. `socks` opens it
 * without allowHalfOpen, and then Node ends the writing half as soon as the reading half
 * ends: an upload still in progress stops there, and its pending 'drain' never comes.
 * That, not the relay, is what once hung this file (the download finished first).
 */
async function halfOpenClient(gwPort: number, destPort: number): Promise<Socket> {
  const { socket } = await socksConnect(gwPort, { host: '127.0.0.1', port: destPort }, 3_000);
  socket.allowHalfOpen = true;
  return socket;
}

// Its own timeout, shorter than the runner's (which, on Node 20, also bounds the whole
// file and then names only the file): a hang here fails with this test's name.
test('64 MiB each way at once, byte-identical, with half-close', { timeout: 45_000 }, async (t) => {
  // The server sends its own 64 MiB and hashes what it receives; each side ends
  // its writing half and keeps reading until the other's FIN.
  let serverSide: Promise<[string, { hash: string; bytes: number }]> | undefined;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    serverSide = Promise.all([sendHashed(s, SIZE), receiveHashed(s)]);
  });
  const { gw, destPort } = await gatewayTo(t, server);

  const socket = await halfOpenClient(gw.port, destPort);
  t.after(() => socket.destroy());
  const [sentUp, receivedDown] = await Promise.all([sendHashed(socket, SIZE), receiveHashed(socket)]);
  const [sentDown, receivedUp] = await serverSide!;
  assert.equal(receivedUp.bytes, SIZE);
  assert.equal(receivedDown.bytes, SIZE);
  assert.equal(receivedUp.hash, sentUp);
  assert.equal(receivedDown.hash, sentDown);
});

test('half-close: the destination answers and ends first, the client keeps uploading to the end', { timeout: 30_000 }, async (t) => {
  // The order that hung this file once: the download is over (FIN relayed to the
  // client) while the upload still has most of its bytes to go.
  const UP = 16 * 1024 * 1024;
  let serverSide: Promise<[string, { hash: string; bytes: number }]> | undefined;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    serverSide = Promise.all([sendHashed(s, 1024), receiveHashed(s)]);
  });
  const { gw, destPort } = await gatewayTo(t, server);
  const socket = await halfOpenClient(gw.port, destPort);
  t.after(() => socket.destroy());
  const receivedDown = await receiveHashed(socket);
  const sentUp = await sendHashed(socket, UP);
  const [sentDown, receivedUp] = await serverSide!;
  assert.equal(receivedDown.hash, sentDown);
  assert.equal(receivedUp.bytes, UP);
  assert.equal(receivedUp.hash, sentUp);
});

test('half-close: the client ends its side and still receives the answer', async (t) => {
  // The server answers only after the client's FIN: a proxy that closed both
  // directions on the first FIN would lose the answer.
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
  });
  const { gw, destPort } = await gatewayTo(t, server);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: destPort }, 3_000);
  socket.end('twelve bytes');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'got 12 bytes');
});
