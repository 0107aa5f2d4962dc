import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { socksConnect, startGateway } from '../helpers/index.js';

const SIZE = 64 * 1024 * 1024;

/** Writes `total` pseudo-random bytes with backpressure, hashing them; ends the socket after. */
async function sendHashed(s: Socket, total: number): Promise<string> {
  const hash = createHash('sha256');
  const block = randomBytes(256 * 1024);
  for (let sent = 0, i = 0; sent < total; sent += block.length, i++) {
    block.writeUInt32LE(i, 0); // no two blocks alike: reordering would show
    hash.update(block);
    if (!s.write(block)) await once(s, 'drain');
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
  return once(s, 'end').then(() => ({ hash: hash.digest('hex'), bytes }));
}

test('64 MiB each way at once, byte-identical, with half-close', async (t) => {
  // The server sends its own 64 MiB and hashes what it receives; each side ends
  // its writing half and keeps reading until the other's FIN.
  let serverSide: Promise<[string, { hash: string; bytes: number }]> | undefined;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    serverSide = Promise.all([sendHashed(s, SIZE), receiveHashed(s)]);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const gw = await startGateway();
  t.after(() => gw.close());

  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: (server.address() as AddressInfo).port }, 3_000);
  t.after(() => socket.destroy());
  const [sentUp, receivedDown] = await Promise.all([sendHashed(socket, SIZE), receiveHashed(socket)]);
  const [sentDown, receivedUp] = await serverSide!;
  assert.equal(receivedUp.bytes, SIZE);
  assert.equal(receivedDown.bytes, SIZE);
  assert.equal(receivedUp.hash, sentUp);
  assert.equal(receivedDown.hash, sentDown);
});

test('half-close: the client ends its side and still receives the answer', async (t) => {
  // The server answers only after the client's FIN: a proxy that closed both
  // directions on the first FIN would lose the answer.
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => s.end(`got ${Buffer.concat(chunks).length} bytes`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: (server.address() as AddressInfo).port }, 3_000);
  socket.end('twelve bytes');
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  await once(socket, 'end');
  assert.equal(Buffer.concat(chunks).toString(), 'got 12 bytes');
});
