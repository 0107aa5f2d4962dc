// CONNECT through an upstream whose success reply names a BND.ADDR our own reply cannot
// carry: the client is refused, and the socket dialed to the upstream is closed with it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { Cmd } from '../../src/protocol/constants.js';
import { encodeGreeting, encodeRequest } from '../../src/protocol/messages.js';
import { closedWithin, readBytes, startGateway } from '../helpers/index.js';

/** ATYP 3 with 100 bytes that are not UTF-8: the `socks` client reads them as 100 U+FFFD, 300 bytes re-encoded. */
const UNENCODABLE_BND = Buffer.concat([Buffer.from([5, 0, 0, 3, 100]), Buffer.alloc(100, 0xff), Buffer.from([0x1f, 0x90])]);

/**
 * Test instrument (scripted SOCKS5 upstream): no auth, then the success reply above, and
 * it keeps the connection open: whether it closes is up to the gateway.
 */
async function startUpstream(): Promise<{ port: number; accepted: Promise<Socket>; close(): Promise<void> }> {
  let gotSocket!: (s: Socket) => void;
  const accepted = new Promise<Socket>((resolve) => (gotSocket = resolve));
  const sockets: Socket[] = [];
  const server = createServer((s) => {
    sockets.push(s);
    gotSocket(s);
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => void s.write(step++ === 0 ? Buffer.from([5, 0]) : UNENCODABLE_BND));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

test('an upstream reply no SOCKS5 reply can carry: the client gets 0x01 and the upstream socket is closed', async (t) => {
  const upstream = await startUpstream();
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    rules: [{ name: 'via-up', domains: ['example.test'], action: 'up' }],
  });
  t.after(() => gw.close());

  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: 'example.test', port: 80 })]));
  const reply = await readBytes(s, 4);
  assert.deepEqual([...reply], [5, 0, 5, 1], 'method 0x00, then reply 0x01 (general failure)');
  assert.ok(await closedWithin(s), 'the client is closed');

  const dialed = await upstream.accepted;
  assert.ok(await closedWithin(dialed), 'the socket the gateway dialed to the upstream is closed too');
  const line = await gw.accessLog((l) => l['dest'] === 'example.test:80');
  assert.equal(line?.['rep'], 1);
  assert.equal(line?.['outbound'], 'up');
  assert.match(String(line?.['error']), /./);
});
