// An abortive close is passed on as one: a peer that resets mid-transfer makes the gateway
// reset the other peer, who would otherwise read a FIN and take a truncated stream for a
// whole one (a download delimited by the end of the connection).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { gatewayTo, socksConnect } from '../helpers/index.js';

/** How `s` ended: 'FIN' (a clean end of stream) or the error code it closed with. */
function endOf(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let how: string | undefined;
    s.on('end', () => (how ??= 'FIN'));
    s.on('error', (err: NodeJS.ErrnoException) => (how ??= err.code ?? err.message));
    s.on('close', () => resolve(how ?? 'closed'));
    s.resume();
  });
}

test('a destination that resets mid-download resets the client, not a FIN', async (t) => {
  const MiB = 1024 * 1024;
  let atDest: Socket | undefined;
  const server = createServer((s) => {
    s.on('error', () => {});
    atDest = s;
    s.write(Buffer.alloc(MiB, 1));
  });
  const { gw, destPort } = await gatewayTo(t, server);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: destPort }, 3_000);
  t.after(() => socket.destroy());
  const ended = endOf(socket);
  // A megabyte out, then an abortive close once the client has all of it: a reset that overtook bytes the
  // gateway had yet to read would discard them, and a pause standing in for their arrival is a guess.
  let got = 0;
  socket.on('data', (c: Buffer) => {
    got += c.length;
    if (got === MiB) atDest?.resetAndDestroy();
  });
  assert.equal(await ended, 'ECONNRESET');
  assert.equal(got, MiB, 'what the destination sent before its reset arrives');
  const line = await gw.accessLog(() => true);
  assert.equal(line?.down, MiB);
  assert.match(String(line?.error), /ECONNRESET/);
});

test('a client that resets mid-upload resets the destination, not a FIN', async (t) => {
  const dest: Socket[] = [];
  const server = createServer((s) => {
    s.on('error', () => {});
    dest.push(s);
  });
  const { gw, destPort } = await gatewayTo(t, server);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: destPort }, 3_000);
  for (let i = 0; i < 100 && dest.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  const [atDest] = dest;
  assert.ok(atDest, 'the destination accepted');
  const ended = endOf(atDest);
  socket.write(Buffer.alloc(64 * 1024, 2));
  await once(atDest, 'data');
  socket.resetAndDestroy();
  assert.equal(await ended, 'ECONNRESET');
  const line = await gw.accessLog(() => true);
  assert.match(String(line?.error), /ECONNRESET/);
});
