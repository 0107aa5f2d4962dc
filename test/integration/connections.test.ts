// The registry of open connections (what the admin API lists and kills), filled by the pipeline.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { closedWithin, rawClient, readBytes, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

test('open connections are listed with protocol, user, destination, rule and live bytes; kill ends both sides and logs', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw' }] },
    rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000, { userId: 'alice-session-K1', password: 'pw' });
  t.after(() => socket.destroy());
  socket.write('12345');
  await once(socket, 'data');
  const tunnel = await rawClient(gw.port);
  t.after(() => tunnel.destroy());
  const auth = Buffer.from('alice:pw').toString('base64');
  tunnel.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nProxy-Authorization: Basic ${auth}\r\n\r\nabc`);
  await readBytes(tunnel, 39 + 3);

  const list = gw.gw.connections.list();
  assert.equal(list.length, 2);
  const socks = list.find((c) => c.protocol === 'socks5');
  const http = list.find((c) => c.protocol === 'http');
  assert.ok(socks && http, JSON.stringify(list));
  assert.equal(socks.user, 'alice');
  assert.equal(socks.command, 'connect');
  assert.equal(socks.dest, `127.0.0.1:${echo.port}`);
  assert.equal(socks.rule, 'lo');
  assert.equal(socks.outbound, 'direct');
  assert.equal(socks.up, 5);
  assert.equal(socks.down, 5);
  assert.equal(socks.client, `127.0.0.1:${socket.localPort}`);
  assert.equal(http.user, 'alice');
  assert.equal(http.up, 3);

  assert.equal(gw.gw.connections.kill(socks.id, 'killed by test'), true);
  assert.ok(await closedWithin(socket));
  const line = await gw.accessLog((l) => l.protocol === 'socks5' && l.error === 'killed by test');
  assert.ok(line);
  assert.equal(line.up, 5);
  assert.equal(gw.gw.connections.kill(socks.id), false, 'gone from the registry');
  assert.equal(gw.gw.connections.list().length, 1);
  tunnel.write('more');
  assert.equal((await readBytes(tunnel, 4)).toString(), 'more', 'the other connection is untouched');
});

test('a client that resets while its upstream is being dialed: the line says it left, for SOCKS5, SOCKS4 and HTTP CONNECT', async (t) => {
  // An HTTP upstream that holds each CONNECT until the test answers it.
  const held: Socket[] = [];
  const upstream = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => {
      held.push(s);
      upstream.emit('head');
    });
  });
  const up = await listenTracked(upstream, '127.0.0.1');
  t.after(() => up.close());
  const gw = await startGateway({ upstreams: { up: { type: 'http', host: '127.0.0.1', port: up.port } }, default: 'up' });
  t.after(() => gw.close());
  const requests = {
    socks5: Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 9]),
    socks4: Buffer.from([4, 1, 0, 9, 127, 0, 0, 1, 0]),
    http: Buffer.from('CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n\r\n'),
  };
  for (const [protocol, request] of Object.entries(requests)) {
    const client = await rawClient(gw.port);
    client.on('error', () => {});
    const dialing = once(upstream, 'head');
    client.write(request);
    await dialing;
    // The reset and the upstream's grant reach the gateway together: the dial completes
    // for a client already gone.
    client.resetAndDestroy();
    held.at(-1)!.write('HTTP/1.1 200 Connection established\r\n\r\n');
    const line = await gw.accessLog((l) => l.protocol === protocol, 5_000);
    assert.equal(line?.error, 'client closed the connection', JSON.stringify(line));
    assert.equal(line?.rep, undefined, 'no reply went out');
  }
});
