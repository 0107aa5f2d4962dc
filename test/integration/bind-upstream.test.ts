import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { openSocks5Bind } from '../../src/outbound/socks5-bind.js';
import { startGateway } from '../helpers/index.js';
import { startRecordingSocks } from '../helpers/instruments.js';
import { startDante, startMicrosocks } from '../helpers/upstreams.js';

const ctx = () => ({ signal: new AbortController().signal, log: pino({ level: 'silent' }), sessionKey: 't' });

test('BIND through Dante: it listens on its address, the peer connects there, bytes flow', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  t.after(() => handle.close());
  assert.equal(handle.listening.host, '127.0.0.9');
  assert.notEqual(handle.listening.port, 0);
  const peer = connect({ host: handle.listening.host, port: handle.listening.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const { socket, peer: from } = await handle.accepted();
  t.after(() => socket.destroy());
  assert.deepEqual(from, { host: '127.0.0.1', port: peer.localPort });
  peer.write('hello binder');
  socket.resume();
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'hello binder');
});

test('closing a Dante BIND before a peer rejects accepted()', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  const waiting = handle.accepted();
  handle.close();
  await assert.rejects(waiting);
});

/**
 * A SOCKS5 BIND through the gateway at `gwPort`: the first reply names `listenHost` (Dante's own
 * address), a peer connects there, the second reply names the peer, and bytes reach it.
 */
async function bindThrough(t: TestContext, gwPort: number, listenHost: string): Promise<void> {
  const client = new SocksClient({ proxy: { host: '127.0.0.1', port: gwPort, type: 5 }, command: 'bind', destination: { host: '127.0.0.1', port: 0 }, timeout: 5_000 });
  const first = once(client, 'bound') as Promise<[{ remoteHost?: SocksRemoteHost }]>;
  const established = once(client, 'established') as Promise<[{ socket: Socket; remoteHost?: SocksRemoteHost }]>;
  established.catch(() => {});
  client.connect(); // an 'error' event rejects both
  const [bound] = await first;
  assert.equal(bound.remoteHost?.host, listenHost, 'the upstream listens on its own address');
  const peer = connect({ host: listenHost, port: bound.remoteHost!.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const [{ socket, remoteHost }] = await established;
  t.after(() => socket.destroy());
  assert.equal(remoteHost?.port, peer.localPort);
  socket.write('to peer');
  const [chunk] = (await once(peer, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'to peer');
}

test('BIND routed to a Dante upstream: both replies come from Dante and bytes flow', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const gw = await startGateway({
    upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
  });
  t.after(() => gw.close());
  await bindThrough(t, gw.port, '127.0.0.9');
});

for (const type of ['socks5', 'socks4'] as const) {
  test(`BIND through a chain to a ${type} upstream: the control connection goes through the hop, Dante listens on its own address, bytes flow`, async (t) => {
    const relay = await startMicrosocks({ host: '127.0.0.164' });
    t.after(() => relay.close());
    // The hop records its logins: proof the control connection went through it.
    const hop = await startRecordingSocks('127.0.0.163', relay);
    t.after(() => hop.close());
    const dante = await startDante({ host: '127.0.0.165' });
    t.after(() => dante.close());
    const gw = await startGateway({
      upstreams: {
        hop: { type: 'socks5', host: hop.host, port: hop.port, username: 'hop-user', password: 'hop-pw' },
        dante: { type, host: dante.host, port: dante.port, via: 'hop' },
      },
      rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
    });
    t.after(() => gw.close());
    await bindThrough(t, gw.port, '127.0.0.165');
    assert.deepEqual(hop.logins.map((l) => l.username), ['hop-user'], 'the control connection went through the hop');
  });
}
