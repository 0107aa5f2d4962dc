import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { peerText } from '../../src/protocol/address.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { startGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { closeDgram, rawFrame, sendRaw, socksUdpClient, startUdpEchoServer, udpAssociation, udpLogLine } from '../helpers/udp.js';

test('UDP ASSOCIATE relays an IPv4 round trip and replies with the real relay address', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  assert.equal(c.relay.host, '127.0.0.1');
  assert.notEqual(c.relay.port, 0);
  c.send({ host: '127.0.0.1', port: echo.port }, 'ping4');
  const a = await c.receive();
  assert.ok(a, 'an answer');
  assert.equal(a.data.toString(), 'ping4');
  assert.deepEqual([a.host, a.port], ['127.0.0.1', echo.port]);
  await c.close();
  const line = await udpLogLine(gw);
  assert.ok(line);
  assert.deepEqual(line['udp'], { sent: 1, received: 1, dropped: {} });
  assert.equal(line['up'], 5);
  assert.equal(line['down'], 5);
});

test('UDP ASSOCIATE over an IPv6 listener relays to an IPv6 destination', async (t) => {
  const { echo, c } = await udpAssociation(t, { listen: [{ host: '::1', port: 0 }] }, { host: '::1' });
  c.send({ host: '::1', port: echo.port }, 'ping6');
  const a = await c.receive();
  assert.ok(a, 'an answer');
  assert.equal(a.data.toString(), 'ping6');
  assert.deepEqual([a.host, a.port], ['::1', echo.port]);
});

test('a domain destination is resolved (dns.hosts) and the answer names its real source', async (t) => {
  const { echo, c } = await udpAssociation(t, { dns: { hosts: { 'echo.test': '127.0.0.1' } } });
  for (let i = 0; i < 3; i++) c.send({ host: 'echo.test', port: echo.port }, `name${i}`);
  const got: string[] = [];
  for (let i = 0; i < 3; i++) {
    const a = await c.receive();
    assert.ok(a, `answer ${i}`);
    assert.deepEqual([a.host, a.port], ['127.0.0.1', echo.port]);
    got.push(a.data.toString());
  }
  assert.deepEqual(got.sort(), ['name0', 'name1', 'name2']);
});

test('datagrams from another port or another address are dropped', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  const frame = rawFrame(echo.port, 'intruder');
  await sendRaw(frame, c.relay, '127.0.0.1'); // right IP, another port
  // Another IP with the client's own port: only the address check can drop this one.
  await sendRaw(frame, c.relay, '127.0.0.2', c.socket.address().port);
  c.send({ host: '127.0.0.1', port: echo.port }, 'mine');
  const a = await c.receive();
  assert.equal(a?.data.toString(), 'mine');
  assert.equal(await c.receive(300), undefined);
  assert.equal(echo.peers.length, 1, 'only the client datagram reached the destination');
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { source: 2 } });
});

test('without a declared port the first datagram locks the client port', async (t) => {
  const { echo, c } = await udpAssociation(t, {}, { declarePort: false });
  c.send({ host: '127.0.0.1', port: echo.port }, 'first');
  assert.equal((await c.receive())?.data.toString(), 'first');
  const frame = rawFrame(echo.port, 'later');
  await sendRaw(frame, c.relay, '127.0.0.1');
  c.send({ host: '127.0.0.1', port: echo.port }, 'second');
  assert.equal((await c.receive())?.data.toString(), 'second');
  assert.equal(echo.peers.length, 2);
});

test('FRAG != 0 and malformed datagrams are dropped and counted', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  c.socket.send(rawFrame(echo.port, 'frag', 1), c.relay.port, c.relay.host);
  c.socket.send(Buffer.from([0, 0, 0, 9, 1]), c.relay.port, c.relay.host);
  c.send({ host: '127.0.0.1', port: echo.port }, 'whole');
  assert.equal((await c.receive())?.data.toString(), 'whole');
  assert.equal(await c.receive(300), undefined);
  assert.equal(echo.peers.length, 1);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { frag: 1, malformed: 1 } });
  const metrics = await gw.gw.metrics.registry.getSingleMetricAsString('socksgate_udp_datagrams_total');
  assert.match(metrics, /direction="up",result="frag"} 1/);
});

test('a blocked UDP destination is dropped', async (t) => {
  const { echo, gw, c } = await udpAssociation(t, {
    dns: { hosts: { 'blocked.test': '127.0.0.1', 'open.test': '127.0.0.1' } },
    rules: [{ name: 'no-udp', domains: ['blocked.test'], commands: ['udp'], action: 'block' }],
  });
  c.send({ host: 'blocked.test', port: echo.port }, 'nope');
  c.send({ host: 'open.test', port: echo.port }, 'yes');
  assert.equal((await c.receive())?.data.toString(), 'yes');
  assert.equal(await c.receive(300), undefined);
  assert.equal(echo.peers.length, 1);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { blocked: 1 } });
});

test('a destination its rule blocks does not rename the traffic relayed before it: the line and the rule byte counts name the rule that carried it', async (t) => {
  const { echo, gw, c } = await udpAssociation(t, {
    dns: { hosts: { 'blocked.test': '127.0.0.1' } },
    rules: [
      { name: 'no-udp', domains: ['blocked.test'], action: 'block' },
      { name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' },
    ],
  });
  const dest = { host: '127.0.0.1', port: echo.port };
  c.send(dest, 'one');
  assert.equal((await c.receive())?.data.toString(), 'one');
  c.send({ host: 'blocked.test', port: echo.port }, 'nope');
  c.send(dest, 'two'); // answered after the blocked datagram was decided: both come in order on one socket
  assert.equal((await c.receive())?.data.toString(), 'two');
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 2, received: 2, dropped: { blocked: 1 } });
  assert.equal(line?.['rule'], 'lo');
  assert.equal(line?.['outbound'], 'direct');
  assert.equal(await metricValue(gw.gw, 'socksgate_rule_bytes_total', { rule: 'lo', direction: 'up' }), 6);
  assert.ok(Number.isNaN(await metricValue(gw.gw, 'socksgate_rule_bytes_total', { rule: 'no-udp', direction: 'up' })), 'a block rule relays nothing');
  assert.equal(await metricValue(gw.gw, 'socksgate_rule_matches_total', { rule: 'no-udp', action: 'block' }), 1);
});

test('when the control connection closes the relay socket is closed', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: '127.0.0.1', port: echo.port }, 'alive');
  assert.equal((await c.receive())?.data.toString(), 'alive');
  c.control.destroy();
  assert.ok(await udpLogLine(gw), 'the association ended');
  assert.equal(gw.gw.activeSessions, 0);
  // A connected UDP socket learns of a closed port from the ICMP error: ECONNREFUSED.
  const probe = createSocket('udp4');
  t.after(() => closeDgram(probe));
  probe.connect(c.relay.port, c.relay.host);
  await once(probe, 'connect');
  const errored = once(probe, 'error');
  probe.send(Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0, 7]));
  const [err] = (await errored) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED');
});

test('an association with no datagrams ends after udp_idle_timeout', async (t) => {
  const gw = await startGateway({ limits: { udp_idle_timeout: '200ms' } });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  const closed = once(c.control, 'close');
  c.control.resume();
  await closed;
  const line = await udpLogLine(gw);
  assert.equal(line?.['error'], 'udp idle timeout');
});

test('udp.advertise replaces the address in the reply, not the port', async (t) => {
  const gw = await startGateway({ udp: { advertise: '192.0.2.7' } });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  assert.equal(c.relay.host, '192.0.2.7');
  assert.notEqual(c.relay.port, 0);
});

test('udp.advertise names the relays of its own family: an IPv4 address behind NAT leaves IPv6 clients their own relay address', async (t) => {
  const echo = await startUdpEchoServer('::1');
  t.after(() => echo.close());
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0 }, { host: '::1', port: 0 }], udp: { advertise: '192.0.2.7' } });
  t.after(() => gw.close());
  const v4 = await socksUdpClient({ host: '127.0.0.1', port: gw.gw.addresses[0]!.port });
  t.after(() => v4.close());
  assert.equal(v4.relay.host, '192.0.2.7');
  // An IPv6 client could not reach an IPv6 relay at an IPv4 address: it keeps the relay's own.
  const v6 = await socksUdpClient({ host: '::1', port: gw.gw.addresses[1]!.port });
  t.after(() => v6.close());
  assert.equal(peerText(v6.relay.host), '::1'); // `socks` writes it out in full
  v6.send({ host: '::1', port: echo.port }, 'six');
  assert.equal((await v6.receive())?.data.toString(), 'six');
});

test('a dual-stack listener gives an IPv4 client an IPv4 relay', async (t) => {
  // A listener on "::" turns the egress guard's loopback denial on: the echo server is on this machine.
  // The client arrives as ::ffff:127.0.0.1; the relay and the source check use 127.0.0.1.
  const { echo, c } = await udpAssociation(t, { listen: [{ host: '::', port: 0 }], allow_open_proxy: true, egress: { deny: [] } });
  assert.equal(c.relay.host, '127.0.0.1');
  c.send({ host: '127.0.0.1', port: echo.port }, 'dual');
  assert.equal((await c.receive())?.data.toString(), 'dual');
});

test("a name a rule's cidrs routed keeps the addresses the rule matched: a later answer the rules would block is not sent to", async (t) => {
  const dns = await startDnsServer({ 'moving.test': { A: ['127.0.0.1'], ttl: 1 } });
  t.after(() => dns.close());
  const lan = await startUdpEchoServer('127.0.0.1');
  t.after(() => lan.close());
  // The same port on an address no rule lets UDP reach.
  const elsewhere = createSocket('udp4');
  t.after(() => closeDgram(elsewhere));
  const strays: string[] = [];
  elsewhere.on('message', (msg: Buffer) => strays.push(msg.toString()));
  elsewhere.bind(lan.port, '127.0.0.3');
  await once(elsewhere, 'listening');
  const gw = await startGateway({
    dns: { servers: [`127.0.0.1:${dns.port}`] },
    rules: [{ name: 'lan', commands: ['udp'], cidrs: ['127.0.0.1/32'], action: 'direct' }],
    default: 'block',
  });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: 'moving.test', port: lan.port }, 'first');
  assert.equal((await c.receive())?.data.toString(), 'first');
  dns.set('moving.test', { A: ['127.0.0.3'], ttl: 1 });
  await new Promise((resolve) => setTimeout(resolve, 1_500)); // the first answer's TTL has run out
  c.send({ host: 'moving.test', port: lan.port }, 'second');
  assert.equal((await c.receive())?.data.toString(), 'second', 'still the address the rule matched');
  assert.deepEqual(strays, [], 'nothing went where the rules would not route it');
});
