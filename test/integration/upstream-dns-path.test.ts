// UDP ASSOCIATE and BIND reach a SOCKS5 upstream the way CONNECT does: its name goes through
// the gateway's resolver (dns.hosts, the cache, the numeric-name guard), never getaddrinfo.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { rawBind, readReply } from '../helpers/bind.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { socks5Rep, startGateway } from '../helpers/index.js';
import { socksUdpClient, startUdpEchoServer } from '../helpers/udp.js';
import { startDante } from '../helpers/upstreams.js';

test('UDP and BIND through an upstream named only in dns.hosts', async (t) => {
  const dante = await startDante({ host: '127.0.0.11' });
  t.after(() => dante.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    dns: { hosts: { 'dante.upstream.test': dante.host } },
    upstreams: { dante: { type: 'socks5', host: 'dante.upstream.test', port: dante.port } },
    default: 'dante',
  });
  t.after(() => gw.close());

  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '127.0.0.1', port: echo.port }, 'udp via a name');
  assert.equal((await c.receive(3_000))?.data.toString(), 'udp via a name');
  assert.match(echo.peers[0] ?? '', /^127\.0\.0\.11:/, 'the datagram left from the upstream');

  const client = new SocksClient({ proxy: { host: '127.0.0.1', port: gw.port, type: 5 }, command: 'bind', destination: { host: '127.0.0.1', port: 0 }, timeout: 5_000 });
  const first = once(client, 'bound') as Promise<[{ remoteHost?: SocksRemoteHost }]>;
  const established = once(client, 'established') as Promise<[{ socket: Socket }]>;
  established.catch(() => {});
  client.connect();
  const [bound] = await first;
  assert.equal(bound.remoteHost?.host, dante.host);
  const peer = connect({ host: dante.host, port: bound.remoteHost!.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  const [{ socket }] = await established;
  t.after(() => socket.destroy());
  socket.write('bind via a name');
  const [chunk] = (await once(peer, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'bind via a name');
});

test('dns.hosts overrides the system resolver for a UDP upstream too (localhost mapped elsewhere)', async (t) => {
  // getaddrinfo reads /etc/hosts: "localhost" would be 127.0.0.1, where this upstream is not.
  const dante = await startDante({ host: '127.0.0.12' });
  t.after(() => dante.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    dns: { hosts: { localhost: dante.host } },
    upstreams: { dante: { type: 'socks5', host: 'localhost', port: dante.port } },
    default: 'dante',
  });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '127.0.0.1', port: echo.port }, 'to the mapped address');
  assert.equal((await c.receive(3_000))?.data.toString(), 'to the mapped address');
  assert.match(echo.peers[0] ?? '', /^127\.0\.0\.12:/);
});

test('a numeric upstream name is refused by the config, before any UDP or CONNECT could go through getaddrinfo (inet_aton)', async () => {
  // "2130706445" is 127.0.0.13 to getaddrinfo (inet_aton): never dialed, never looked up.
  await assert.rejects(
    startGateway({ upstreams: { dante: { type: 'socks5', host: '2130706445', port: 1080 } }, default: 'dante' }),
    /upstreams\.dante\.host: "2130706445" is not an IP address, and a DNS name cannot end in a number/,
  );
});

test("an upstream whose own name the name server never answers: connect_timeout ends CONNECT and BIND (0x06), not the resolver's timeout", async (t) => {
  const dns = await startDnsServer({ 'mute-proxy.test': { silent: true } });
  t.after(() => dns.close());
  const gw = await startGateway({
    dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '20s' },
    limits: { connect_timeout: '500ms' },
    upstreams: { up: { type: 'socks5', host: 'mute-proxy.test', port: 1080 } },
    default: 'up',
  });
  t.after(() => gw.close());
  let started = performance.now();
  assert.equal(await socks5Rep(gw.port, { host: '127.0.0.1', port: 80 }), 0x06);
  assert.ok(performance.now() - started < 5_000, `CONNECT answered after ${Math.round(performance.now() - started)} ms`);
  assert.ok(dns.queries('mute-proxy.test') > 0, 'the name server was asked');
  started = performance.now();
  const { s } = await rawBind(gw.port, { host: '127.0.0.1', port: 0 });
  t.after(() => s.destroy());
  assert.equal((await readReply(s))?.rep, 0x06);
  assert.ok(performance.now() - started < 5_000, `BIND answered after ${Math.round(performance.now() - started)} ms`);
});
