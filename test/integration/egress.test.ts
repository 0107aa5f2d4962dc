// The egress guard on real sockets. Only loopback addresses are denied and dialed here:
// 127.0.0.2 stands in for an internal host (link-local, metadata and NAT64 forms are
// checked against the matcher in test/outbound/egress.test.ts, never dialed).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { encodeGreeting, decodeReply, NEED_DATA } from '../../src/protocol/messages.js';
import { rawClient, readBytes, startEchoServer, startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { socksUdpClient, startUdpEchoServer } from '../helpers/udp.js';
import { curl } from '../helpers/curl.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { metricValue } from '../helpers/metrics.js';

const DENY_ONE = { egress: { deny: ['127.0.0.2/32'] } };

/** CONNECT over a raw client; the reply code, and the socket for relaying when it is 0. */
async function connectRaw(gwPort: number, atypAndAddr: Buffer, port: number): Promise<{ rep: number | undefined; s: Socket }> {
  const s = await rawClient(gwPort);
  s.on('error', () => {});
  const portBytes = Buffer.from([port >> 8, port & 0xff]);
  s.write(Buffer.concat([encodeGreeting([0]), Buffer.from([5, 1, 0]), atypAndAddr, portBytes]));
  await readBytes(s, 2);
  const head = await readBytes(s, 4);
  const rest = await readBytes(s, head[3] === 4 ? 18 : 6);
  const r = decodeReply(Buffer.concat([head, rest]));
  return { rep: r === NEED_DATA ? undefined : r.value.rep, s };
}

const v4 = (ip: string): Buffer => Buffer.from([1, ...ip.split('.').map(Number)]);
const mapped = (ip: string): Buffer => Buffer.from([4, ...new Array<number>(10).fill(0), 0xff, 0xff, ...ip.split('.').map(Number)]);
const domain = (name: string): Buffer => Buffer.concat([Buffer.from([3, name.length]), Buffer.from(name, 'latin1')]);

async function echoes(s: Socket): Promise<boolean> {
  s.write('ping');
  return (await readBytes(s, 4)).toString() === 'ping';
}

async function deniedCount(gw: TestGateway, command: string): Promise<number> {
  const m = await gw.gw.metrics.registry.getSingleMetric('socksgate_egress_denials_total')?.get();
  return m?.values.find((v) => v.labels['command'] === command)?.value ?? 0;
}

test('the denial series exist at 0 before the first denial, so the first one shows in increase()', async (t) => {
  const internal = await startEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const gw = await startGateway(DENY_ONE);
  t.after(() => gw.close());
  const before = await gw.gw.metrics.registry.metrics();
  for (const command of ['connect', 'http', 'udp']) assert.match(before, new RegExp(`^socksgate_egress_denials_total\\{command="${command}"\\} 0$`, 'm'));
  const denied = await connectRaw(gw.port, v4('127.0.0.2'), internal.port);
  t.after(() => denied.s.destroy());
  assert.equal(denied.rep, 0x02);
  assert.match(await gw.gw.metrics.registry.metrics(), /^socksgate_egress_denials_total\{command="connect"\} 1$/m);
});

test('CONNECT to a denied address gets 0x02, logged as egress denied and counted; others pass', async (t) => {
  const internal = await startEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const open = await startEchoServer('127.0.0.1');
  t.after(() => open.close());
  const gw = await startGateway(DENY_ONE);
  t.after(() => gw.close());

  const denied = await connectRaw(gw.port, v4('127.0.0.2'), internal.port);
  t.after(() => denied.s.destroy());
  assert.equal(denied.rep, 0x02);
  const line = await gw.accessLog((l) => l['rep'] === 2);
  assert.equal(line?.['error'], 'egress denied');
  assert.equal(await deniedCount(gw, 'connect'), 1);
  assert.deepEqual(internal.peers, [], 'nothing was dialed');

  const allowed = await connectRaw(gw.port, v4('127.0.0.1'), open.port);
  t.after(() => allowed.s.destroy());
  assert.equal(allowed.rep, 0x00);
  assert.ok(await echoes(allowed.s));
});

test('the IPv4-mapped IPv6 literal of a denied address is denied too', async (t) => {
  const internal = await startEchoServer('127.0.0.2');
  t.after(() => internal.close());
  for (const [deny, rep] of [
    [['127.0.0.2/32'], 0x02],
    [[], 0x00], // the same request reaches the server with the guard off: the refusal above is the guard's
  ] as const) {
    const gw = await startGateway({ egress: { deny } });
    t.after(() => gw.close());
    const c = await connectRaw(gw.port, mapped('127.0.0.2'), internal.port);
    t.after(() => c.s.destroy());
    assert.equal(c.rep, rep, `deny ${JSON.stringify(deny)}`);
    if (rep === 0) assert.ok(await echoes(c.s));
  }
  assert.equal(internal.peers.length, 1);
});

test('denying loopback denies 0.0.0.0 and :: too: dialed, they reach this host (CONNECT, HTTP, UDP)', async (t) => {
  const local4 = await startEchoServer('127.0.0.1');
  t.after(() => local4.close());
  const local6 = await startEchoServer('::1');
  t.after(() => local6.close());
  const gw = await startGateway({ egress: { deny: ['loopback'] } });
  t.after(() => gw.close());
  for (const [addr, port] of [
    [v4('0.0.0.0'), local4.port],
    [mapped('0.0.0.0'), local4.port],
    [Buffer.from([4, ...new Array<number>(16).fill(0)]), local6.port],
    [domain('0.0.0.0'), local4.port],
    [domain('::'), local6.port],
  ] as const) {
    const c = await connectRaw(gw.port, addr, port);
    t.after(() => c.s.destroy());
    assert.equal(c.rep, 0x02, addr.toString('hex'));
  }
  assert.deepEqual([local4.peers, local6.peers], [[], []], 'nothing reached the loopback servers');
  const tunnel = await curl(['-x', `http://127.0.0.1:${gw.port}`, '--proxytunnel', '-o', '/dev/null', '-w', '%{http_connect}', `http://0.0.0.0:${local4.port}/`]);
  assert.equal(tunnel.stdout, '403');

  const udpLocal = await startUdpEchoServer('127.0.0.1');
  t.after(() => udpLocal.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '0.0.0.0', port: udpLocal.port }, 'to-any');
  assert.equal(await c.receive(300), undefined, 'no answer from this host');
  assert.deepEqual(udpLocal.peers, []);
  assert.equal(await deniedCount(gw, 'udp'), 1);
});

test('a name that resolves (dns.hosts) to a denied address is denied after resolution', async (t) => {
  const internal = await startEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const gw = await startGateway({ ...DENY_ONE, dns: { hosts: { 'intranet.test': '127.0.0.2', 'public.test': '127.0.0.1' } } });
  t.after(() => gw.close());
  const c = await connectRaw(gw.port, domain('intranet.test'), internal.port);
  t.after(() => c.s.destroy());
  assert.equal(c.rep, 0x02);
  assert.deepEqual(internal.peers, []);
  const open = await startEchoServer('127.0.0.1');
  t.after(() => open.close());
  const ok = await connectRaw(gw.port, domain('public.test'), open.port);
  t.after(() => ok.s.destroy());
  assert.equal(ok.rep, 0x00);
});

test('HTTP proxy requests and HTTP CONNECT to a denied address get 403; a rule with its cidrs lifts it', async (t) => {
  const internal = await startHttpServer('127.0.0.2');
  t.after(() => internal.close());
  const gw = await startGateway(DENY_ONE);
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const forwarded = await curl(['-x', proxy, '-o', '/dev/null', '-w', '%{http_code}', internal.url]);
  assert.equal(forwarded.stdout, '403');
  const tunnel = await curl(['-x', proxy, '--proxytunnel', '-o', '/dev/null', '-w', '%{http_connect}', internal.url]);
  assert.equal(tunnel.stdout, '403');
  assert.equal(await deniedCount(gw, 'http'), 2);

  const lifted = await startGateway({ ...DENY_ONE, rules: [{ name: 'intranet', cidrs: ['127.0.0.2/32'], action: 'direct' }] });
  t.after(() => lifted.close());
  const ok = await curl(['-x', `http://127.0.0.1:${lifted.port}`, internal.url]);
  assert.match(ok.stdout, /^hello \/ from 127\.0\.0\.1/);
});

test("a rule's own cidrs lift the guard for a direct route into them, by address and by name", async (t) => {
  const internal = await startEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const gw = await startGateway({
    egress: { deny: ['loopback'] },
    dns: { hosts: { 'intranet.test': '127.0.0.2', 'other.test': '127.0.0.3' } },
    rules: [{ name: 'intranet', cidrs: ['127.0.0.2/32'], action: 'direct' }],
  });
  t.after(() => gw.close());
  for (const addr of [v4('127.0.0.2'), domain('intranet.test')]) {
    const c = await connectRaw(gw.port, addr, internal.port);
    t.after(() => c.s.destroy());
    assert.equal(c.rep, 0x00);
    assert.ok(await echoes(c.s));
  }
  // The same loopback network outside the rule's cidrs stays denied (default rule).
  const other = await connectRaw(gw.port, domain('other.test'), internal.port);
  t.after(() => other.s.destroy());
  assert.equal(other.rep, 0x02);
});

test('a UDP datagram to a denied address is dropped and counted as denied; others are relayed', async (t) => {
  const internal = await startUdpEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const open = await startUdpEchoServer('127.0.0.1');
  t.after(() => open.close());
  const gw = await startGateway(DENY_ONE);
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '127.0.0.2', port: internal.port }, 'to-internal');
  c.send({ host: '127.0.0.1', port: open.port }, 'to-open');
  const a = await c.receive();
  assert.equal(a?.data.toString(), 'to-open');
  assert.equal(await c.receive(300), undefined, 'no answer from the denied address');
  assert.deepEqual(internal.peers, []);
  assert.equal(await deniedCount(gw, 'udp'), 1);
  await c.close();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  assert.deepEqual((line?.['udp'] as { dropped: unknown } | undefined)?.dropped, { denied: 1 });
});


test('a UDP datagram to a name goes to the first address the guard allows, as CONNECT does; a name with none allowed is denied', async (t) => {
  const dns = await startDnsServer({ 'mixed.test': { A: ['127.0.0.2', '127.0.0.1'] }, 'internal.test': { A: ['127.0.0.2'] } });
  t.after(() => dns.close());
  const internal = await startUdpEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const open = await startUdpEchoServer('127.0.0.1');
  t.after(() => open.close());
  const gw = await startGateway({ ...DENY_ONE, dns: { servers: [`127.0.0.1:${dns.port}`] } });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: 'mixed.test', port: open.port }, 'to-mixed');
  const a = await c.receive();
  assert.equal(a?.data.toString(), 'to-mixed');
  assert.deepEqual([a?.host, a?.port], ['127.0.0.1', open.port]);
  c.send({ host: 'internal.test', port: internal.port }, 'to-internal');
  assert.equal(await c.receive(300), undefined, 'no answer from the denied address');
  assert.deepEqual(internal.peers, []);
  await c.close();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  // Only what left counts as sent, and in `up`: the denied datagram is counted under its reason alone.
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { denied: 1 } });
  assert.equal(line?.['up'], 'to-mixed'.length);
});

test('a UDP datagram to a name that does not resolve counts under unresolved only: not as sent, not in up, not as relayed', async (t) => {
  const dns = await startDnsServer({ 'known.test': { A: ['127.0.0.1'] } });
  t.after(() => dns.close());
  const echo = await startUdpEchoServer('127.0.0.1');
  t.after(() => echo.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`] } });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: 'unknown.test', port: echo.port }, 'lost');
  c.send({ host: 'known.test', port: echo.port }, 'kept');
  assert.equal((await c.receive())?.data.toString(), 'kept');
  await c.close();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { unresolved: 1 } });
  assert.equal(line?.['up'], 'kept'.length);
  assert.equal(await metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'relayed' }), 1);
});
