// The per-source and per-user shares (PRODUCT.md "Limits"): checked once the request is
// complete, so the client hears why — SOCKS5 0x02, SOCKS4 0x5B, HTTP 429 — while another
// client IP (127.0.0.2) or another user is served at the same moment; a slot comes back
// when its connection closes, exactly once.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { curl } from '../helpers/curl.js';
import type { Socket } from 'node:net';
import { closedWithin, httpExchange, rawClient, startEchoServer, startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { encodeProxyV1 } from '../../src/protocol/proxy-protocol.js';
import { refusals } from '../helpers/metrics.js';
import { echoOnce, httpConnectRaw, socks4Raw, socks5Raw } from '../helpers/raw-proxy.js';

/** The refusal log lines (not access-log lines) for `client`. */
const refusalLines = (gw: TestGateway, client: string): Array<Record<string, unknown>> =>
  gw.logs.filter((l) => l.msg === 'client refused by a limit' && l['client'] === client);

test('max_connections_per_source: the same IP gets 0x02 / 0x5B / 429, another IP is served, a closed slot comes back', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ limits: { max_connections_per_source: 2 } });
  t.after(() => gw.close());

  const a = await socks5Raw(gw.port, echo.port);
  t.after(() => a.socket.destroy());
  const b = await socks4Raw(gw.port, echo.port);
  t.after(() => b.socket.destroy());
  assert.equal(a.code, 0);
  assert.equal(b.code, 0x5a);

  const started = performance.now();
  const s5 = await socks5Raw(gw.port, echo.port);
  assert.equal(s5.code, 0x02, 'SOCKS5: REP 0x02 after the request');
  assert.ok(await closedWithin(s5.socket));
  const s4 = await socks4Raw(gw.port, echo.port);
  assert.equal(s4.code, 0x5b, 'SOCKS4: 0x5B');
  assert.ok(await closedWithin(s4.socket));
  const h = await httpConnectRaw(gw.port, echo.port);
  assert.equal(h.code, 429, 'HTTP CONNECT: 429');
  h.socket.destroy();
  const forwarded = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${gw.port}`, `${web.url}/x`]);
  assert.equal(forwarded.stdout, '429', `an absolute-form request: 429 (${forwarded.stderr})`);
  const elapsed = performance.now() - started;

  // Another client IP at the same moment, and the connections already open, are unaffected.
  const other = await socks5Raw(gw.port, echo.port, { from: '127.0.0.2' });
  t.after(() => other.socket.destroy());
  assert.equal(other.code, 0);
  assert.equal(await echoOnce(other.socket, 'other ip'), 'other ip');
  assert.equal(await echoOnce(a.socket, 'still open'), 'still open');

  assert.equal(await refusals(gw.gw, 'max_connections_per_source'), 4);
  const logged = refusalLines(gw, '127.0.0.1');
  assert.ok(logged.length >= 1 && logged.length <= 1 + Math.ceil(elapsed / 1000), `at most one line per second for one IP: ${logged.length}`);
  assert.equal(logged[0]?.['limit'], 'max_connections_per_source');
  assert.match(String(logged[0]?.['reason']), /max_connections_per_source/);
  assert.equal(refusalLines(gw, '127.0.0.2').length, 0);
  const line = await gw.accessLog((l) => l.protocol === 'socks5' && l.rep === 2);
  assert.equal(line?.error, 'limit max_connections_per_source reached');

  // One closes: exactly one slot comes back (a second new client is refused again).
  a.socket.destroy();
  await gw.accessLog((l) => l.protocol === 'socks5' && l.rep === 0 && l.client === `127.0.0.1:${a.socket.localPort}`);
  const again = await socks5Raw(gw.port, echo.port);
  t.after(() => again.socket.destroy());
  assert.equal(again.code, 0, 'admitted after one closed');
  assert.equal(await echoOnce(again.socket, 'back'), 'back');
  const third = await socks5Raw(gw.port, echo.port);
  third.socket.destroy();
  assert.equal(third.code, 0x02, 'and only one came back');
});

test('max_connections_per_source counts HTTP keep-alive connections a 407 or a 400 left open, and closes the one it refuses', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw' }] }, limits: { max_connections_per_source: 2 } });
  t.after(() => gw.close());
  const open: Socket[] = [];
  t.after(() => open.forEach((s) => s.destroy()));
  /** Sends `request`, reads its whole response, returns the status line's start. */
  const status = async (s: Socket, request: string): Promise<string> => (await httpExchange(s, request)).slice(0, 12);
  for (const request of [`GET ${web.url}/x HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /origin-form HTTP/1.1\r\nHost: x\r\n\r\n']) {
    const s = await rawClient(gw.port);
    open.push(s);
    assert.match(await status(s, request), /^HTTP\/1\.1 40[07]$/);
  }
  const third = await rawClient(gw.port);
  open.push(third);
  assert.equal(await status(third, `GET ${web.url}/x HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n`), 'HTTP/1.1 429');
  assert.ok(await closedWithin(third), 'a connection refused for its source is not kept open uncounted');
  // The first two are still open, and still served.
  assert.equal(await status(open[0]!, `GET ${web.url}/x HTTP/1.1\r\nHost: x\r\nProxy-Authorization: Basic YWxpY2U6cHc=\r\n\r\n`), 'HTTP/1.1 200');
  assert.equal(await refusals(gw.gw, 'max_connections_per_source'), 1);
});

test("a user's max_connections: that user gets 0x02 / 429 (session keys included), another user is served; a closed slot comes back", async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    auth: {
      users: [
        { username: 'alice', password: 'pw', max_connections: 1 },
        { username: 'bob', password: 'pw' },
      ],
    },
  });
  t.after(() => gw.close());
  const alice = { user: 'alice', password: 'pw' };

  const first = await socks5Raw(gw.port, echo.port, alice);
  t.after(() => first.socket.destroy());
  assert.equal(first.code, 0);

  const second = await socks5Raw(gw.port, echo.port, { user: 'alice-session-k1', password: 'pw', from: '127.0.0.2' });
  assert.equal(second.code, 0x02, 'SOCKS5: REP 0x02, from any IP and under any session key');
  assert.ok(await closedWithin(second.socket));
  const viaHttp = await httpConnectRaw(gw.port, echo.port, alice);
  assert.equal(viaHttp.code, 429, 'HTTP CONNECT: 429');
  viaHttp.socket.destroy();

  const bob = await socks5Raw(gw.port, echo.port, { user: 'bob', password: 'pw' });
  t.after(() => bob.socket.destroy());
  assert.equal(bob.code, 0, 'another user is served meanwhile');
  const bob2 = await httpConnectRaw(gw.port, echo.port, { user: 'bob', password: 'pw' });
  t.after(() => bob2.socket.destroy());
  assert.equal(bob2.code, 200);
  assert.equal(await echoOnce(bob2.socket, 'bob over http'), 'bob over http');
  assert.equal(await refusals(gw.gw, 'user_max_connections'), 2);
  assert.equal(await refusals(gw.gw, 'max_connections_per_source'), 0);

  first.socket.destroy();
  await gw.accessLog((l) => l.user === 'alice' && l.rep === 0);
  const back = await socks5Raw(gw.port, echo.port, alice);
  t.after(() => back.socket.destroy());
  assert.equal(back.code, 0, 'admitted once the first closed');
  const over = await httpConnectRaw(gw.port, echo.port, alice);
  over.socket.destroy();
  assert.equal(over.code, 429, 'and the slot is held again');
});

test('behind a trusted PROXY header, the source is the client the header names, not the balancer', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: ['127.0.0.1/32'] } }],
    limits: { max_connections_per_source: 1 },
  });
  t.after(() => gw.close());
  const behind = (client: string): { prefix: Buffer } => ({
    prefix: encodeProxyV1({ family: 'inet', source: { host: client, port: 40000 }, dest: { host: '203.0.113.1', port: 1080 } }),
  });
  const first = await socks5Raw(gw.port, echo.port, behind('198.51.100.7'));
  t.after(() => first.socket.destroy());
  assert.equal(first.code, 0);
  const other = await socks5Raw(gw.port, echo.port, behind('198.51.100.8'));
  t.after(() => other.socket.destroy());
  assert.equal(other.code, 0, 'another client behind the same balancer is served');
  const same = await socks5Raw(gw.port, echo.port, behind('198.51.100.7'));
  same.socket.destroy();
  assert.equal(same.code, 0x02, "the header's client has its one connection");
  assert.equal(refusalLines(gw, '198.51.100.7').length, 1, 'logged under the client the header names');
});

test('an IPv4 client is one source whichever listener it comes through, a dual-stack one (::ffff:a.b.c.d) included', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // The second listener is an IPv6 socket: it reports an IPv4 peer as ::ffff:127.0.0.1.
  const gw = await startGateway({
    listen: [
      { host: '127.0.0.1', port: 0 },
      { host: '::ffff:127.0.0.1', port: 0 },
    ],
    limits: { max_connections_per_source: 2 },
  });
  t.after(() => gw.close());
  const dualStack = gw.gw.addresses[1]!.port;
  const a = await socks5Raw(gw.port, echo.port);
  t.after(() => a.socket.destroy());
  const b = await socks5Raw(dualStack, echo.port);
  t.after(() => b.socket.destroy());
  assert.deepEqual([a.code, b.code], [0, 0]);
  for (const port of [dualStack, gw.port]) {
    const over = await socks5Raw(port, echo.port);
    over.socket.destroy();
    assert.equal(over.code, 0x02, `a third connection of 127.0.0.1 (listener ${port})`);
  }
  const h = await httpConnectRaw(dualStack, echo.port);
  h.socket.destroy();
  assert.equal(h.code, 429);
  const other = await socks5Raw(dualStack, echo.port, { from: '127.0.0.2' });
  t.after(() => other.socket.destroy());
  assert.equal(other.code, 0, 'another client IP is served');
  // The access log names it as the IPv4 client it is, as the other listener does.
  const refused = await gw.accessLog((l) => l['rep'] === 0x02, 5_000);
  assert.match(String(refused?.['client']), /^127\.0\.0\.1:\d+$/);
});
