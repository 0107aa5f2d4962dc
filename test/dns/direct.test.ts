import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { pino } from 'pino';
import { connectHappyEyeballs } from '../../src/dns/happy-eyeballs.js';
import type { DnsResolver, ResolvedAddress } from '../../src/dns/types.js';
import { ConnectTimeoutError, GatewayError, Rep, toRep } from '../../src/errors.js';
import { createDirectOutbound } from '../../src/outbound/direct.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import { resolverWithServer, startDnsServer, type DnsRecord } from '../helpers/dns-server.js';
import { socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { blackhole } from '../helpers/blackhole.js';

type TestContext = { after(fn: () => unknown): void };

const log = pino({ level: 'silent' });
const ctx = (over: Partial<OutboundContext> = {}): OutboundContext => ({
  signal: new AbortController().signal,
  log,
  sessionKey: 'test',
  ...over,
});

async function listen(t: TestContext, host: string, port = 0): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.end('hello'));
  server.listen(port, host);
  await once(server, 'listening');
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  assert.ok(addr && typeof addr === 'object');
  return { server, port: addr.port };
}

/** A port that was just free on 127.0.0.1: nothing listens there now, so connecting is refused. */
async function closedPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const addr = s.address();
  assert.ok(addr && typeof addr === 'object');
  await new Promise<void>((r) => s.close(() => r()));
  return addr.port;
}

async function resolverFor(t: TestContext, records: Record<string, DnsRecord>): Promise<DnsResolver> {
  return (await resolverWithServer(t, records)).dns;
}

async function greeting(socket: Socket): Promise<string> {
  socket.setEncoding('utf8');
  let text = '';
  for await (const chunk of socket) text += String(chunk);
  return text;
}

test('direct: an AAAA-only name reaches a target on ::1', async (t) => {
  const { port } = await listen(t, '::1');
  const dns = await resolverFor(t, { 'six.test': { AAAA: ['::1'] } });
  const direct = createDirectOutbound({ dns, connectTimeout: 2_000 });
  const { socket } = await direct.connect({ host: 'six.test', port }, ctx());
  t.after(() => socket.destroy());
  assert.equal(socket.remoteAddress, '::1');
  assert.equal(await greeting(socket), 'hello');
});

test('direct: a refused first address falls through to the next one', async (t) => {
  const port = await closedPort(); // refused on 127.0.0.1
  await listen(t, '127.0.0.2', port);
  const dns = await resolverFor(t, { 'two.test': { A: ['127.0.0.1', '127.0.0.2'] } });
  const direct = createDirectOutbound({ dns, connectTimeout: 2_000 });
  const { socket } = await direct.connect({ host: 'two.test', port }, ctx());
  t.after(() => socket.destroy());
  assert.equal(socket.remoteAddress, '127.0.0.2');
  assert.equal(await greeting(socket), 'hello');
});

test('direct: every address refused gives 0x05', async (t) => {
  const port = await closedPort();
  const dns = await resolverFor(t, { 'none.test': { A: ['127.0.0.1', '127.0.0.3'] } });
  const direct = createDirectOutbound({ dns, connectTimeout: 2_000 });
  await assert.rejects(direct.connect({ host: 'none.test', port }, ctx()), (err: unknown) => {
    assert.ok(err instanceof GatewayError);
    assert.equal(toRep(err), Rep.CONNECTION_REFUSED);
    return true;
  });
});

test('direct: a name that does not exist gives 0x04', async (t) => {
  const dns = await resolverFor(t, {});
  const direct = createDirectOutbound({ dns, connectTimeout: 2_000 });
  await assert.rejects(direct.connect({ host: 'nothing.invalid', port: 80 }, ctx()), (err: unknown) => {
    assert.equal(toRep(err), Rep.HOST_UNREACHABLE);
    return true;
  });
});

test('direct: the router\'s answer in ctx.resolved is used without a lookup', async (t) => {
  const { port } = await listen(t, '127.0.0.1');
  // The name server would send the dial elsewhere (nothing listens on 127.0.0.2).
  const { server, dns } = await resolverWithServer(t, { 'routed.test': { A: ['127.0.0.2'] } });
  const direct = createDirectOutbound({ dns, connectTimeout: 2_000 });
  const resolved: ResolvedAddress[] = [{ address: '127.0.0.1', family: 4 }];
  const { socket } = await direct.connect({ host: 'routed.test', port }, ctx({ resolved }));
  t.after(() => socket.destroy());
  assert.equal(socket.remoteAddress, '127.0.0.1');
  assert.equal(await greeting(socket), 'hello');
  assert.equal(server.queries('routed.test'), 0);
});

test('direct: an address that never answers gives 0x06 after connect_timeout', { timeout: 10_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.4');
  const dns = await resolverFor(t, { 'slow.test': { A: ['127.0.0.4'] } });
  const direct = createDirectOutbound({ dns, connectTimeout: 300 });
  await assert.rejects(direct.connect({ host: 'slow.test', port }, ctx()), (err: unknown) => {
    assert.ok(err instanceof ConnectTimeoutError);
    assert.equal(toRep(err), Rep.TTL_EXPIRED);
    return true;
  });
});

test('happy eyeballs: a hanging first address does not stop the second', { timeout: 10_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.5');
  await listen(t, '127.0.0.6', port);
  const addresses: ResolvedAddress[] = [
    { address: '127.0.0.5', family: 4 },
    { address: '127.0.0.6', family: 4 },
  ];
  const socket = await connectHappyEyeballs(addresses, port, { timeout: 5_000 });
  t.after(() => socket.destroy());
  assert.equal(socket.remoteAddress, '127.0.0.6');
  assert.equal(await greeting(socket), 'hello');
});

test('happy eyeballs: an abort ends a pending attempt', { timeout: 10_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.7');
  const ac = new AbortController();
  const pending = connectHappyEyeballs([{ address: '127.0.0.7', family: 4 }], port, {
    timeout: 5_000,
    signal: ac.signal,
  });
  setImmediate(() => ac.abort());
  await assert.rejects(pending, { name: 'AbortError' });
});

test('happy eyeballs: with two addresses that never answer, the deadline rejects with 0x06 and an abort ends both', { timeout: 10_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.8');
  await blackhole(t, '127.0.0.9', port);
  const addresses: ResolvedAddress[] = [
    { address: '127.0.0.8', family: 4 },
    { address: '127.0.0.9', family: 4 },
  ];
  await assert.rejects(connectHappyEyeballs(addresses, port, { timeout: 400 }), (err: unknown) => {
    assert.ok(err instanceof ConnectTimeoutError);
    assert.match(err.message, /127\.0\.0\.8:/);
    assert.equal(toRep(err), Rep.TTL_EXPIRED);
    return true;
  });
  const ac = new AbortController();
  const pending = connectHappyEyeballs(addresses, port, { timeout: 5_000, signal: ac.signal });
  setTimeout(() => ac.abort(), 300); // past the 250 ms stagger: both attempts are out
  await assert.rejects(pending, { name: 'AbortError' });
});

test('happy eyeballs: one address refused rejects with its errno; one that answers is handed over with no listener of ours', { timeout: 10_000 }, async (t) => {
  await assert.rejects(connectHappyEyeballs([{ address: '127.0.0.1', family: 4 }], await closedPort(), { timeout: 2_000 }), { code: 'ECONNREFUSED' });
  const { port } = await listen(t, '127.0.0.1');
  const ac = new AbortController();
  const socket = await connectHappyEyeballs([{ address: '127.0.0.1', family: 4 }], port, { timeout: 2_000, signal: ac.signal });
  t.after(() => socket.destroy());
  assert.equal(socket.listenerCount('error'), 0);
  assert.equal(socket.listenerCount('connect'), 0);
  ac.abort(); // too late to matter: the socket stays open
  assert.equal(await greeting(socket), 'hello');
});

test('happy eyeballs: an already aborted signal and an empty list reject at once', async () => {
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(connectHappyEyeballs([{ address: '127.0.0.1', family: 4 }], 9, { timeout: 1_000, signal: ac.signal }));
  await assert.rejects(connectHappyEyeballs([], 9, { timeout: 1_000 }), (err: unknown) => {
    assert.equal(toRep(err), Rep.HOST_UNREACHABLE);
    return true;
  });
});

test('happy eyeballs: a port out of range rejects instead of throwing', async () => {
  await assert.rejects(connectHappyEyeballs([{ address: '127.0.0.1', family: 4 }], 70_000, { timeout: 1_000 }), {
    code: 'ERR_SOCKET_BAD_PORT',
  });
});

test('a name a cidrs rule could not resolve is refused with 0x04 without a second lookup for the connect', { timeout: 20_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const server = await startDnsServer({ 'broken.test': { servfail: true }, 'quiet.test': { A: ['127.0.0.1'], silent: true } });
  t.after(() => server.close());
  const gw = await startGateway({
    dns: { servers: [`${server.host}:${server.port}`], timeout: '2s' },
    rules: [{ name: 'lan', cidrs: ['10.0.0.0/8'], action: 'block' }],
    default: 'direct',
  });
  t.after(() => gw.close());
  await assert.rejects(socksConnect(gw.port, { host: 'broken.test', port: echo.port }, 5_000), /HostUnreachable/);
  assert.equal(server.queries('broken.test', 'A'), 1, 'the failed answer is the request\'s answer');
  // A name server that does not answer costs the client one resolver timeout (2 s), not two. The
  // lookup itself may ask again within its timeout, so the time tells, not the count of queries.
  const started = Date.now();
  await assert.rejects(socksConnect(gw.port, { host: 'quiet.test', port: echo.port }, 10_000), /HostUnreachable/);
  assert.ok(server.queries('quiet.test', 'A') >= 1);
  assert.ok(Date.now() - started < 3_500, `refused after ${Date.now() - started} ms`);
});

test('happy eyeballs takes the families in turn (RFC 8305 §4): a working AAAA behind six A records that never answer is reached within a short connect_timeout', { timeout: 20_000 }, async (t) => {
  const echo = await startEchoServer('::1');
  t.after(() => echo.close());
  // Six IPv4 addresses that blackhole the echo server's port.
  const v4 = ['127.0.0.212', '127.0.0.213', '127.0.0.214', '127.0.0.215', '127.0.0.216', '127.0.0.217'];
  for (const host of v4) await blackhole(t, host, echo.port);
  const server = await startDnsServer({ 'dual.test': { A: v4, AAAA: ['::1'] } });
  t.after(() => server.close());
  // IPv4 first (the default): ::1 after six attempt delays (1.5 s) in turn, after one (250 ms) alternating.
  const gw = await startGateway({ dns: { servers: [`${server.host}:${server.port}`] }, limits: { connect_timeout: '1200ms' } });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: 'dual.test', port: echo.port }, 5_000);
  t.after(() => socket.destroy());
  socket.write('ping');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'ping');
  assert.deepEqual(echo.peers, ['::1']);
});
