import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { BlockList, isIPv6, Server, Socket, type AddressInfo } from 'node:net';
import { blackhole, dialing } from '../helpers/blackhole.js';
import { readHooks } from '../helpers/read-hooks.js';
import { requireFile } from '../helpers/spawn.js';
import { closedPort, rawClient, socksConnect, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';
import { curl } from '../helpers/curl.js';
import { startDnsServer } from '../helpers/dns-server.js';

/** `socks` prints IPv6 uncompressed: compare as addresses, not strings. */
function isLoopback6(host: string): boolean {
  const lo = new BlockList();
  lo.addAddress('::1', 'ipv6');
  return isIPv6(host) && lo.check(host, 'ipv6');
}

test('CONNECT through a direct rule relays bytes both ways', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  t.after(() => socket.destroy());
  socket.write('ping');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'ping');
});

test('a client that resets while its destination has not answered ends the dial then, not at connect_timeout', { timeout: 30_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.12');
  const gw = await startGateway({ limits: { connect_timeout: '15s' }, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const client = await rawClient(gw.port);
  client.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 12, port >> 8, port & 0xff]));
  assert.ok(await dialing('127.0.0.12', port), 'the gateway dials the destination');
  // A reset, not a FIN: a FIN is a half-close (the client may still want the answer) and the dial goes on.
  client.resetAndDestroy();
  const line = await gw.accessLog((l) => l.dest === `127.0.0.12:${port}`, 5_000);
  assert.ok(line, 'no access-log line within 5 s of the reset (the dial waited for connect_timeout)');
  assert.equal(line.error, 'client closed the connection');
});

test('a client that resets while an upstream has not answered is logged as the client leaving, not as the upstream failing', { timeout: 30_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.13');
  const gw = await startGateway({
    limits: { connect_timeout: '15s' },
    upstreams: { slow: { type: 'socks5', host: '127.0.0.13', port } },
    default: 'slow',
  });
  t.after(() => gw.close());
  const client = await rawClient(gw.port);
  client.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
  assert.ok(await dialing('127.0.0.13', port), 'the gateway dials the upstream');
  client.resetAndDestroy();
  const line = await gw.accessLog((l) => l.dest === '127.0.0.1:80', 5_000);
  assert.ok(line, 'no access-log line within 5 s of the reset');
  assert.equal(line.error, 'client closed the connection');
});

test('stopping the gateway ends a dial whose destination has not answered, not at connect_timeout', { timeout: 30_000 }, async (t) => {
  const port = await blackhole(t, '127.0.0.11');
  // A dial left to connect_timeout would outlast the test's own timeout: a stop that waited for it fails by name.
  const gw = await startGateway({ limits: { connect_timeout: '1h' }, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close()); // a failure before the stop below must not leave it running
  const client = await rawClient(gw.port);
  t.after(() => client.destroy());
  // Greeting and CONNECT 127.0.0.11:port in one write; nothing comes back while the dial hangs.
  client.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 11, port >> 8, port & 0xff]));
  assert.ok(await dialing('127.0.0.11', port), 'the gateway dials the destination');
  await gw.close();
  const line = gw.logs.find((l) => l.msg === 'session end' && l.dest === `127.0.0.11:${port}`);
  assert.equal(line?.error, 'gateway stopped');
});

test('an outbound socket still open after the keepalive sweep has TCP keepalive on', { timeout: 20_000 }, async (t) => {
  const ss = requireFile('/usr/bin/ss', 'iproute2');
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] }, { keepAliveSweepMs: 200 });
  t.after(() => gw.close());
  const { socket, remoteHost } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  t.after(() => socket.destroy());
  // BND.PORT is the local port of the gateway's outbound socket: ss shows its keepalive timer.
  const filter = ['-tnoH', 'state', 'established', 'sport', '=', `:${remoteHost!.port}`];
  let shown = '';
  for (let i = 0; i < 40 && !shown.includes('timer:(keepalive'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    shown = execFileSync(ss, filter, { encoding: 'utf8' });
  }
  assert.match(shown, /127\.0\.0\.1:\d+ +127\.0\.0\.1:\d+ +timer:\(keepalive,/, `ss showed: ${shown}`);
});

test('once a relayed connection ends, neither of its gateway sockets keeps a listener or read hook of the request', { timeout: 20_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  // The gateway's two sockets of the connection: the one its listener accepts, the one it dials.
  const accepted: Socket[] = [];
  const dialed: Socket[] = [];
  const emit = Server.prototype.emit as (this: Server, event: string | symbol, ...args: unknown[]) => boolean;
  t.mock.method(Server.prototype, 'emit', function (this: Server, event: string | symbol, ...args: unknown[]) {
    const at = this.address() as AddressInfo | null;
    if (event === 'connection' && at?.port === gw.port) accepted.push(args[0] as Socket);
    return emit.call(this, event, ...args);
  });
  const connect = Socket.prototype.connect;
  t.mock.method(Socket.prototype, 'connect', function (this: Socket, ...args: unknown[]) {
    const opts = Array.isArray(args[0]) ? (args[0] as unknown[])[0] : args[0];
    if ((opts as { port?: number } | undefined)?.port === echo.port) dialed.push(this);
    return (connect as (...a: unknown[]) => Socket).apply(this, args);
  });
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  socket.write('ping');
  await once(socket, 'data');
  socket.end();
  await once(socket, 'close');
  assert.ok(await gw.accessLog((l) => l.dest === `127.0.0.1:${echo.port}` && l.rep === 0, 5_000), 'the connection logged its end');
  assert.equal(accepted.length, 1, 'one accepted socket seen');
  assert.equal(dialed.length, 1, 'one dialed socket seen');
  for (const [name, s] of [['accepted', accepted[0]!], ['dialed', dialed[0]!]] as const) {
    assert.ok(s.closed, `${name} is closed`);
    assert.deepEqual(s.eventNames(), ['error'], `${name}: ${s.eventNames().map(String).join(', ')}`);
    assert.deepEqual(readHooks(s), [], `${name}: no read hook left`);
  }
});

test('the reply carries the real local address of the outbound socket', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const { socket, remoteHost } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  t.after(() => socket.destroy());
  assert.equal(remoteHost?.host, '127.0.0.1');
  assert.ok((remoteHost?.port ?? 0) > 0, 'BND.PORT is the outbound socket port, not 0');
  assert.notEqual(remoteHost?.port, echo.port);
});

test('IPv6 destination ::1 through an IPv6 listener', async (t) => {
  const echo = await startEchoServer('::1');
  t.after(() => echo.close());
  const gw = await startGateway({ listen: [{ host: '::1', port: 0 }] });
  t.after(() => gw.close());
  const { socket, remoteHost } = await socksConnect(gw.port, { host: '::1', port: echo.port }, 2_000, { host: '::1' });
  t.after(() => socket.destroy());
  assert.ok(isLoopback6(remoteHost?.host ?? ''), `BND.ADDR ${remoteHost?.host}`);
  socket.write('six');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'six');
});

test('IPv6 addresses are written bracketed: the listening line, and the error of a refused ::1 destination', async (t) => {
  const gw = await startGateway({ listen: [{ host: '::1', port: 0 }] });
  t.after(() => gw.close());
  const listening = gw.logs.find((l) => l.msg === 'socksgate listening');
  assert.deepEqual(listening?.listen, [`[::1]:${gw.port}`]);
  const port = await closedPort('::1');
  await assert.rejects(socksConnect(gw.port, { host: '::1', port }, 2_000, { host: '::1' }));
  const line = await gw.accessLog((l) => l.dest === `[::1]:${port}`, 5_000);
  assert.equal(line?.rep, 0x05);
  assert.equal(line?.error, `[::1]:${port}: ECONNREFUSED`);
});

test('curl --socks5 and --socks5-hostname fetch from a local HTTP server', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const dns = await startDnsServer({ 'web.test': { A: ['127.0.0.1'] } });
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`${dns.host}:${dns.port}`] } });
  t.after(() => gw.close());
  const byAddress = await curl(['--socks5', `127.0.0.1:${gw.port}`, `${http.url}/a`]);
  assert.equal(byAddress.code, 0, byAddress.stderr);
  assert.match(byAddress.stdout, /^hello \/a from 127\.0\.0\.1/);
  const byName = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `http://web.test:${http.port}/b`]);
  assert.equal(byName.code, 0, byName.stderr);
  assert.match(byName.stdout, /^hello \/b/);
  assert.ok(dns.queries('web.test') > 0, 'the gateway resolved the name with the test DNS server');
  const line = await gw.accessLog((l) => l.dest === `web.test:${http.port}`);
  assert.equal(line?.rep, 0);
  assert.equal(line?.cmd, 'connect');
  assert.equal(line?.rule, 'default');
  assert.equal(line?.outbound, 'direct');
  for (const field of ['client', 'up', 'down', 'ms']) assert.ok(line && field in line, `access log has ${field}`);
});

test('curl with --proxy-user: right password passes, wrong one fails, passwords never logged', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 's3cret-pw' }] } });
  t.after(() => gw.close());
  const ok = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, '--proxy-user', 'alice:s3cret-pw', `${http.url}/x`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^hello \/x/);
  const bad = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, '--proxy-user', 'alice:wrong-pw', `${http.url}/x`]);
  assert.equal(bad.code, 97, bad.stderr); // CURLE_PROXY: the SOCKS5 handshake failed
  assert.match(bad.stderr, /User was rejected by the SOCKS5 server/);
  const none = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `${http.url}/x`]);
  assert.equal(none.code, 97, none.stderr);
  assert.match(none.stderr, /No authentication method was acceptable/, 'no credentials offered → no acceptable method');
  assert.ok(await gw.accessLog((l) => l.user === 'alice' && l.rep === 0));
  assert.ok(await gw.accessLog((l) => l.error === 'authentication failed'));
  const text = JSON.stringify(gw.logs);
  assert.ok(!text.includes('s3cret-pw') && !text.includes('wrong-pw'), 'no password in logs');
});

test('connection refused gets reply 0x05, a name that does not exist 0x04', async (t) => {
  const dns = await startDnsServer({ 'no-such-host.test': { nxdomain: true } });
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`${dns.host}:${dns.port}`] } });
  t.after(() => gw.close());
  const port = await closedPort();
  await assert.rejects(
    socksConnect(gw.port, { host: '127.0.0.1', port }, 3_000),
    /ConnectionRefused/,
  );
  await assert.rejects(
    socksConnect(gw.port, { host: 'no-such-host.test', port: 80 }, 5_000),
    /HostUnreachable/,
  );
  assert.ok(dns.queries('no-such-host.test') > 0, 'the name went to the test DNS server');
});

test('a rule with action block gives curl reply 0x02', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ rules: [{ name: 'no-local', domains: ['full:localhost'], action: 'block' }] });
  t.after(() => gw.close());
  const blocked = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `http://localhost:${http.port}/`]);
  assert.equal(blocked.code, 97);
  assert.match(blocked.stderr, /\(2\)/, 'curl reports REP 2');
  const line = await gw.accessLog((l) => l.rep === 2);
  assert.equal(line?.rule, 'no-local');
});
