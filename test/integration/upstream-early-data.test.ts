// A destination that speaks first and hangs up at once ("421 busy"): its words arrive at the
// upstream together with the CONNECT reply, and must still reach the client.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { socksConnect, startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

/**
 * Test instrument (scripted SOCKS5 upstream): answers CONNECT with its reply, a banner and FIN
 * in one write, a segment no real server can be made to send on purpose.
 */
async function bannerThenCloseUpstream(banner: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    let stage = 0;
    s.on('data', () => {
      if (stage++ === 0) s.write(Buffer.from([5, 0]));
      else s.end(Buffer.concat([Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]), Buffer.from(banner)]));
    });
  });
  return listenTracked(server);
}

test('bytes that arrive with the upstream reply, then EOF, reach the client before its EOF', async (t) => {
  const upstream = await bannerThenCloseUpstream('421 busy, try later\r\n');
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { hop: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    default: 'hop',
  });
  t.after(() => gw.close());
  for (let i = 0; i < 20; i++) {
    const { socket } = await socksConnect(gw.port, { host: 'mail.example', port: 25 }, 3_000);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.resume();
    await once(socket, 'end');
    assert.equal(Buffer.concat(chunks).toString(), '421 busy, try later\r\n', `attempt ${i}`);
    socket.destroy();
  }
  // The banner came in the upstream's reply segment: it is counted down, the reply is not.
  const line = await gw.accessLog((l) => l.cmd === 'connect');
  assert.equal(line?.down, '421 busy, try later\r\n'.length);
  assert.equal(line?.up, 0);
});
