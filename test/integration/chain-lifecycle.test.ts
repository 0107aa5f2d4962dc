// A chain's streams end as a direct one's do: the client's FIN reaches the destination through
// every hop and the answer still comes back; a client that resets during the chain's dial
// leaves no connection open at any hop.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { closedWithin, rawClient, readBytes, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { startHeldListener } from '../helpers/instruments.js';
import { startDante, startTinyproxy } from '../helpers/upstreams.js';

/** Writes `payload`, half-closes, and reads until the far end closes: what came back. */
function halfCloseExchange(s: Socket, payload: Buffer): Promise<Buffer> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no end within 10 s; got ${Buffer.concat(chunks).length} bytes`)), 10_000);
    s.on('data', (b: Buffer) => chunks.push(b));
    s.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    s.resume();
    s.end(payload);
  });
}

/** An HTTP CONNECT tunnel through the gateway, its 200 head read off. */
async function httpTunnel(port: number, dest: { host: string; port: number }): Promise<Socket> {
  const s = await rawClient(port);
  s.write(`CONNECT ${dest.host}:${dest.port} HTTP/1.1\r\nHost: ${dest.host}:${dest.port}\r\n\r\n`);
  let head = Buffer.alloc(0);
  for (let i = 0; i < 256 && !head.includes('\r\n\r\n'); i++) head = Buffer.concat([head, await readBytes(s, 1)]);
  assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 /);
  return s;
}

test('through a chain of two Dante hops, the client half-closes after 2 MiB and gets all of it back, SOCKS5 and HTTP CONNECT alike', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const first = await startDante({ host: '127.0.0.236' });
  t.after(() => first.close());
  const last = await startDante({ host: '127.0.0.237' });
  t.after(() => last.close());
  const gw = await startGateway({
    upstreams: {
      first: { type: 'socks5', host: first.host, port: first.port },
      last: { type: 'socks5', host: last.host, port: last.port, via: 'first' },
    },
    default: 'last',
  });
  t.after(() => gw.close());
  const dest = { host: '127.0.0.1', port: echo.port };
  const payload = randomBytes(2 * 1024 * 1024);
  const { socket } = await socksConnect(gw.port, dest, 5_000);
  t.after(() => socket.destroy());
  assert.ok((await halfCloseExchange(socket, payload)).equals(payload), 'SOCKS5: every byte back, then the end');
  const tunnel = await httpTunnel(gw.port, dest);
  t.after(() => tunnel.destroy());
  assert.ok((await halfCloseExchange(tunnel, payload)).equals(payload), 'HTTP CONNECT: every byte back, then the end');
  assert.deepEqual(echo.peers, ['127.0.0.237', '127.0.0.237'], 'the destination was reached from the last hop');
});

for (const hop of ['socks5', 'http'] as const) {
  test(`a client that resets while the last upstream of a chain (first hop ${hop}) has not answered leaves no connection at any hop`, async (t) => {
    const silent = await startHeldListener('127.0.0.238');
    t.after(() => silent.close());
    const first = hop === 'socks5' ? await startDante({ host: '127.0.0.239' }) : await startTinyproxy({ host: '127.0.0.239' });
    t.after(() => first.close());
    const gw = await startGateway({
      limits: { connect_timeout: '30s' },
      upstreams: {
        first: { type: hop, host: first.host, port: first.port },
        last: { type: 'socks5', host: silent.host, port: silent.port, via: 'first' },
      },
      default: 'last',
    });
    t.after(() => gw.close());
    for (const front of ['socks5', 'http'] as const) {
      const s = await rawClient(gw.port);
      s.on('error', () => {});
      t.after(() => s.destroy());
      if (front === 'socks5') s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 9]));
      else s.write('CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n');
      const n = silent.accepted.length + 1;
      await silent.accepting(n); // the chain reached the last upstream through the first hop
      s.resetAndDestroy();
      // The hop closes its stream to the last upstream only once the gateway closed its own to the hop.
      assert.ok(await closedWithin(silent.accepted[n - 1]!, 5_000), `${front}: the chain is taken down hop by hop`);
      const line = await gw.accessLog((l) => l.protocol === front && l.error !== undefined, 5_000);
      assert.equal(line?.error, 'client closed the connection', `${front}: logged as the client leaving, not as a failure of a hop`);
    }
  });
}
