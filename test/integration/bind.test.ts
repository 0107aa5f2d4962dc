import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { rawBind, readReply, socksBind } from '../helpers/bind.js';
import { decodeReply, NEED_DATA } from '../../src/protocol/messages.js';
import { closedWithin, readBytes, startGateway } from '../helpers/index.js';
import { startMicrosocks } from '../helpers/upstreams.js';

async function connectFrom(to: { host: string; port: number }, localAddress: string): Promise<Socket> {
  const s = connect({ host: to.host, port: to.port, localAddress });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/**
 * A peer from 127.0.0.2 is cut off, then one from 127.0.0.1 is the BIND's peer: the second
 * reply names it (host and port).
 */
async function strangerRefusedPeerAccepted(
  t: TestContext,
  bound: { host: string; port: number },
  peer: Promise<{ socket: Socket; remote: { host: string; port: number } }>,
): Promise<void> {
  const stranger = await connectFrom(bound, '127.0.0.2');
  t.after(() => stranger.destroy());
  assert.ok(await closedWithin(stranger), 'the stranger is cut off');
  const p = await connectFrom(bound, '127.0.0.1');
  t.after(() => p.destroy());
  const { socket, remote } = await peer;
  t.after(() => socket.destroy());
  assert.deepEqual([remote.host, remote.port], ['127.0.0.1', p.localPort]);
}

test('BIND: first reply names the listener, a peer connects back, second reply names it, bytes flow', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const { bound, peer } = await socksBind(gw.port);
  assert.equal(bound.host, '127.0.0.1');
  assert.notEqual(bound.port, 0);
  const p = await connectFrom({ host: bound.host, port: bound.port }, '127.0.0.1');
  t.after(() => p.destroy());
  const { socket, remote } = await peer;
  t.after(() => socket.destroy());
  assert.deepEqual([remote.host, remote.port], ['127.0.0.1', p.localPort]);
  p.write('from peer');
  const [down] = (await once(socket, 'data')) as [Buffer];
  assert.equal(down.toString(), 'from peer');
  socket.write('from client');
  const [up] = (await once(p, 'data')) as [Buffer];
  assert.equal(up.toString(), 'from client');
});

test('BIND: a peer from another address than DST.ADDR is refused, the expected one accepted', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const { bound, peer } = await socksBind(gw.port, { host: '127.0.0.1', port: 0 });
  await strangerRefusedPeerAccepted(t, bound, peer);
});

test('BIND: no peer within bind_timeout gets a second reply 0x06 and a close', async (t) => {
  const gw = await startGateway({ limits: { bind_timeout: '1s' } });
  t.after(() => gw.close());
  const { s, method } = await rawBind(gw.port);
  t.after(() => s.destroy());
  assert.deepEqual([...method], [5, 0]);
  const first = await readReply(s);
  assert.equal(first?.rep, 0);
  assert.equal(first?.bound.host, '127.0.0.1');
  const second = await readReply(s);
  assert.equal(second?.rep, 0x06);
  assert.ok(await closedWithin(s));
  // The listener is gone with the BIND.
  const late = connect({ host: '127.0.0.1', port: first!.bound.port });
  const [err] = (await once(late, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('BIND: a bind rule that blocks gets 0x02; an upstream without BIND gets 0x07', async (t) => {
  const upstream = await startMicrosocks({ host: '127.0.0.6' });
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { up: { type: 'socks5', host: upstream.host, port: upstream.port } },
    rules: [
      { name: 'no-bind', commands: ['bind'], ports: [1], action: 'block' },
      { name: 'via-up', commands: ['bind'], action: 'up' },
    ],
  });
  t.after(() => gw.close());
  for (const [port, rep] of [
    [1, 0x02],
    [2, 0x07],
  ] as const) {
    const { s } = await rawBind(gw.port, { host: '127.0.0.1', port });
    t.after(() => s.destroy());
    assert.equal((await readReply(s))?.rep, rep);
    assert.ok(await closedWithin(s));
  }
});

test('BIND routed to an outbound without BIND (an HTTP upstream) gets 0x07, and the upstream is never dialed', async (t) => {
  let dialed = 0;
  const proxy = createServer((s) => {
    dialed++;
    s.destroy();
  });
  proxy.listen(0, '127.0.0.1');
  await once(proxy, 'listening');
  t.after(() => proxy.close());
  const port = (proxy.address() as { port: number }).port;
  const gw = await startGateway({
    upstreams: { web: { type: 'http', host: '127.0.0.1', port } },
    rules: [{ name: 'via-web', commands: ['bind'], action: 'web' }],
  });
  t.after(() => gw.close());
  const { s } = await rawBind(gw.port, { host: '127.0.0.1', port: 0 });
  t.after(() => s.destroy());
  assert.equal((await readReply(s))?.rep, 0x07);
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => l['cmd'] === 'bind');
  assert.equal(line?.['rep'], 0x07);
  assert.equal(line?.['error'], 'outbound "web" cannot BIND');
  assert.equal(dialed, 0);
});

test('BIND: a client over IPv6 whose DST.ADDR is IPv4 (and the reverse) gets a listener its peer can reach', async (t) => {
  const gw = await startGateway({ listen: [{ host: '::', port: 0 }], allow_open_proxy: true, egress: { deny: [] } });
  t.after(() => gw.close());
  for (const [client, peerHost, atyp] of [['::1', '127.0.0.1', 0x01], ['127.0.0.1', '::1', 0x04]] as const) {
    const { s } = await rawBind(gw.port, { host: peerHost, port: 0 }, Buffer.alloc(0), client);
    t.after(() => s.destroy());
    const first = decodeReply(await readBytes(s, atyp === 0x01 ? 10 : 22));
    assert.ok(first !== NEED_DATA);
    assert.equal(first.value.rep, 0x00);
    assert.equal(first.value.bound.host, peerHost, 'the listener is in the family of the peer');
    const p = await connectFrom(first.value.bound, peerHost);
    t.after(() => p.destroy());
    const second = decodeReply(await readBytes(s, atyp === 0x01 ? 10 : 22));
    assert.ok(second !== NEED_DATA);
    assert.deepEqual([second.value.rep, second.value.bound.host, second.value.bound.port], [0x00, peerHost, p.localPort]);
  }
});

test('BIND: DST.ADDR given as a name admits a peer from its addresses only; a name that does not exist gets 0x04', async (t) => {
  const gw = await startGateway({ dns: { hosts: { 'peer.test': '127.0.0.1' } } });
  t.after(() => gw.close());
  const { bound, peer } = await socksBind(gw.port, { host: 'peer.test', port: 0 });
  await strangerRefusedPeerAccepted(t, bound, peer);

  const { s } = await rawBind(gw.port, { host: 'nowhere.invalid', port: 0 });
  t.after(() => s.destroy());
  assert.equal((await readReply(s))?.rep, 0x04);
  assert.ok(await closedWithin(s));
});
