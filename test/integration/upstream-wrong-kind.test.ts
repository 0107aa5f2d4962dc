// Upstreams pointed at the wrong kind of server, as a config typo makes them: an http upstream
// at an https proxy's TLS port or at a SOCKS5 server, an https one at a plain HTTP proxy, a
// socks5 one at an HTTP server, a socks4 one at a SOCKS5-only server. Each is the upstream's
// own failure (SOCKS5 0x01, HTTP 502; a pool tries another member and counts it against this
// one), and the access log names the upstream and says what it answered instead.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import { startEchoServer, startGateway, type TestGateway } from '../helpers/index.js';
import { httpConnectRaw, socks5Raw } from '../helpers/raw-proxy.js';
import { listenTracked } from '../helpers/servers.js';
import { rawBind, readReply } from '../helpers/bind.js';
import { udpLogLine, udpThroughUpstream } from '../helpers/udp.js';
import { tempDir } from '../helpers/temp-dir.js';
import { makePki, startDante, startMicrosocks, startSquid, startTinyproxy, startTlsTerminator } from '../helpers/upstreams.js';

/** A gateway whose every request goes to the upstream `wrong` (`cfg`); both closed by `t.after`. */
async function gatewayTo(t: TestContext, cfg: Record<string, unknown>): Promise<{ gw: TestGateway; port: number }> {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ upstreams: { wrong: cfg }, limits: { connect_timeout: '5s' }, default: 'wrong' });
  t.after(() => gw.close());
  return { gw, port: echo.port };
}

/** SOCKS5 and HTTP CONNECT through the gateway: the reply code and status, and the access log's reason (the same for both). */
async function outcome(gw: TestGateway, port: number): Promise<{ rep: number; status: number; error: string }> {
  const socks = await socks5Raw(gw.port, port, { timeoutMs: 8_000 });
  socks.socket.destroy();
  const http = await httpConnectRaw(gw.port, port, { timeoutMs: 8_000 });
  http.socket.destroy();
  const lines = [await gw.accessLog((l) => l['protocol'] === 'socks5'), await gw.accessLog((l) => l['protocol'] === 'http')];
  assert.equal(lines[0]?.['error'], lines[1]?.['error'], 'one reason whichever front asked');
  return { rep: socks.code, status: http.code, error: String(lines[0]?.['error']) };
}

test('an http upstream without tls at an https proxy\'s TLS port: 0x01 / 502, and the log says it closed before answering CONNECT, a TLS port', async (t) => {
  const dir = await tempDir('wrong-kind');
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.1'] });
  const tiny = await startTinyproxy({ host: '127.0.0.1' });
  t.after(() => tiny.close());
  const front = await startTlsTerminator('127.0.0.1', pki, tiny);
  t.after(() => front.close());
  const { gw, port } = await gatewayTo(t, { type: 'http', host: front.host, port: front.port, tls: false });
  assert.deepEqual(await outcome(gw, port), {
    rep: 0x01,
    status: 502,
    error: 'upstream "wrong": closed the connection before answering CONNECT (a TLS port? tls: true / https://; a SOCKS server? type: socks5 / socks5://)',
  });
});

test('an http upstream at a SOCKS5 server (microsocks): 0x01 / 502, and the log says it is not an HTTP proxy and what it answered', async (t) => {
  const micro = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => micro.close());
  const { gw, port } = await gatewayTo(t, { type: 'http', host: micro.host, port: micro.port });
  assert.deepEqual(await outcome(gw, port), {
    rep: 0x01,
    status: 502,
    error: 'upstream "wrong": not an HTTP proxy: answered 05 ff (a SOCKS5 server? type: socks5 / socks5://)',
  });
});

test('an http upstream at a SOCKS5 server that closes on it (Dante): 0x01 / 502, and the log says it closed before answering CONNECT', async (t) => {
  const dante = await startDante({ host: '127.0.0.1' });
  t.after(() => dante.close());
  const { gw, port } = await gatewayTo(t, { type: 'http', host: dante.host, port: dante.port });
  assert.deepEqual(await outcome(gw, port), {
    rep: 0x01,
    status: 502,
    error: 'upstream "wrong": closed the connection before answering CONNECT (a TLS port? tls: true / https://; a SOCKS server? type: socks5 / socks5://)',
  });
});

test('an https upstream at a plain HTTP proxy (squid): 0x01 / 502, and the log says it is not a TLS port', async (t) => {
  const squid = await startSquid({ host: '127.0.0.1' });
  t.after(() => squid.close());
  const { gw, port } = await gatewayTo(t, { type: 'http', host: squid.host, port: squid.port, tls: true });
  const got = await outcome(gw, port);
  assert.deepEqual([got.rep, got.status], [0x01, 502]);
  assert.equal(got.error, 'upstream "wrong": TLS with the proxy failed: wrong version number (ERR_SSL_WRONG_VERSION_NUMBER): not a TLS port (a plain HTTP proxy? tls: false / http://)');
});

test('a socks4 upstream at a SOCKS5-only server (microsocks): 0x01 / 502, and the log says it is not a SOCKS4 server', async (t) => {
  const micro = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => micro.close());
  const { gw, port } = await gatewayTo(t, { type: 'socks4', host: micro.host, port: micro.port });
  assert.deepEqual(await outcome(gw, port), {
    rep: 0x01,
    status: 502,
    error: 'upstream "wrong": not a SOCKS4 server: answered 05 ff (a SOCKS5 server? type: socks5 / socks5://)',
  });
});

test('a socks5 upstream at an HTTP server that answers at once: 0x01 / 502, and the log says it is not a SOCKS5 server', async (t) => {
  const web = createServer((_req, res) => res.end('x'));
  const { port: webPort, close } = await listenTracked(web);
  t.after(() => close());
  const { gw, port } = await gatewayTo(t, { type: 'socks5', host: '127.0.0.1', port: webPort });
  assert.deepEqual(await outcome(gw, port), {
    rep: 0x01,
    status: 502,
    error: 'upstream "wrong": not a SOCKS5 server: answered "HTTP/" (an HTTP proxy? type: http / http://)',
  });
});

test('a pool whose http:// member is a TLS port: the next member carries the request, and the failure is counted against the first', async (t) => {
  const dir = await tempDir('wrong-kind');
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.1'] });
  const tiny = await startTinyproxy({ host: '127.0.0.1' });
  t.after(() => tiny.close());
  const front = await startTlsTerminator('127.0.0.1', pki, tiny);
  t.after(() => front.close());
  const wrongUrl = `http://127.0.0.1:${front.port}`;
  const { gw, port } = await gatewayTo(t, { type: 'pool', strategy: 'failover', members: [wrongUrl, `http://127.0.0.1:${tiny.port}`] });
  const socks = await socks5Raw(gw.port, port, { timeoutMs: 8_000 });
  t.after(() => socks.socket.destroy());
  assert.equal(socks.code, 0x00, 'the second member carried it');
  const pool = gw.gw.snapshot.outbounds.get('wrong');
  assert.ok(pool && isPoolOutbound(pool));
  const first = pool.stats().find((m) => m.name === wrongUrl);
  assert.deepEqual([first?.attempts, first?.failures, first?.consecutiveFailures], [1, 1, 1]);
});

// A server waiting for a request of its own kind says nothing: given up at connect_timeout as
// a silent upstream (0x06 / 504, as any proxy that takes the connection and never answers),
// with what it may be instead.
for (const [what, cfg, said] of [
  ['an https upstream at tinyproxy', { tls: true, type: 'http' }, 'the TLS handshake (a plain HTTP proxy? tls: false / http://)'],
  ['a socks5 upstream at tinyproxy', { type: 'socks5' }, 'our greeting (an HTTP proxy? type: http / http://)'],
] as const) {
  test(`${what}, which waits in silence: given up at connect_timeout, and the log says what it may be`, async (t) => {
    const tiny = await startTinyproxy({ host: '127.0.0.1' });
    t.after(() => tiny.close());
    const echo = await startEchoServer();
    t.after(() => echo.close());
    const gw = await startGateway({ upstreams: { wrong: { ...cfg, host: tiny.host, port: tiny.port } }, limits: { connect_timeout: '1s' }, default: 'wrong' });
    t.after(() => gw.close());
    const got = await outcome(gw, echo.port);
    assert.deepEqual(got, {
      rep: 0x06,
      status: 504,
      error: `upstream "wrong" silent: upstream "wrong" to 127.0.0.1:${echo.port}: connected, no answer to ${said} within 1000ms`,
    });
  });
}

// BIND and UDP ASSOCIATE run their own handshakes with the upstream: the same words for the same servers.
test('BIND through a socks5 upstream at an HTTP server, a socks4 one at microsocks, a socks5 one at tinyproxy: the reasons say what each is', async (t) => {
  const web = createServer((_req, res) => res.end('x'));
  const { port: webPort, close } = await listenTracked(web);
  t.after(() => close());
  const micro = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => micro.close());
  const tiny = await startTinyproxy({ host: '127.0.0.1' });
  t.after(() => tiny.close());
  const gw = await startGateway({
    upstreams: {
      web: { type: 'socks5', host: '127.0.0.1', port: webPort },
      micro: { type: 'socks4', host: micro.host, port: micro.port },
      tiny: { type: 'socks5', host: tiny.host, port: tiny.port },
    },
    limits: { connect_timeout: '1s' },
    rules: [
      { name: 'web', ports: [1001], action: 'web' },
      { name: 'micro', ports: [1002], action: 'micro' },
      { name: 'tiny', ports: [1003], action: 'tiny' },
    ],
  });
  t.after(() => gw.close());
  for (const [port, rep, error] of [
    [1001, 0x01, 'upstream "web": not a SOCKS5 server: answered "HTTP/" (an HTTP proxy? type: http / http://)'],
    [1002, 0x01, 'upstream "micro": not a SOCKS4 server: answered 05 ff (a SOCKS5 server? type: socks5 / socks5://)'],
    [1003, 0x06, 'upstream "tiny" silent: upstream "tiny" BIND: connected, no answer to our greeting (an HTTP proxy? type: http / http://) within 1000ms'],
  ] as const) {
    const { s } = await rawBind(gw.port, { host: '127.0.0.1', port });
    t.after(() => s.destroy());
    assert.equal((await readReply(s))?.rep, rep, String(port));
    assert.equal((await gw.accessLog((l) => l['dest'] === `127.0.0.1:${port}`))?.['error'], error);
  }
});

test('UDP through a socks5 upstream at an HTTP server: the datagram is dropped and the association\'s line says the upstream is not a SOCKS5 server', async (t) => {
  const web = createServer((_req, res) => res.end('x'));
  const { port: webPort, close } = await listenTracked(web);
  t.after(() => close());
  const { gw, c } = await udpThroughUpstream(t, webPort);
  c.send({ host: '127.0.0.1', port: 9 }, 'x');
  assert.equal(await c.receive(500), undefined);
  await c.close();
  const line = await udpLogLine(gw);
  assert.equal(line?.['error'], 'upstream "up": not a SOCKS5 server: answered "HTTP/" (an HTTP proxy? type: http / http://)');
});
