// The limits on the whole gateway, checked at accept (PRODUCT.md "Limits"): a full gateway
// (max_connections) or too many handshakes in progress (max_handshakes) closes a SOCKS client
// before its greeting and tells an HTTP client 503; room comes back as connections end.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { encodeProxyV1 } from '../../src/protocol/proxy-protocol.js';
import { AcceptRefusals } from '../../src/server/limits-accept.js';
import { curl } from '../helpers/curl.js';
import { closedWithin, httpExchange, rawClient, readBytes, startEchoServer, startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { echoOnce, readHead, socks5Raw } from '../helpers/raw-proxy.js';
import { refusals } from '../helpers/metrics.js';

/** Waits (bounded) until the gateway has `n` sessions open. */
async function sessions(gw: TestGateway, n: number): Promise<number> {
  for (let waited = 0; gw.gw.activeSessions !== n && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  return gw.gw.activeSessions;
}

/** What a refused client gets for `first`: the bytes before the close ('' for none), and whether it was closed. */
async function refusedWith(port: number, first: Buffer | string): Promise<{ answer: string; closed: boolean }> {
  const s = await rawClient(port);
  s.on('error', () => {});
  s.write(first);
  const answer = await readHead(s, 3_000);
  const closed = await closedWithin(s);
  s.destroy();
  return { answer, closed };
}

test('a full gateway: SOCKS and unknown bytes are closed unanswered, HTTP gets 503; counted; served again once room frees', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ limits: { max_connections: 1 } });
  t.after(() => gw.close());
  const held = await socks5Raw(gw.port, echo.port);
  t.after(() => held.socket.destroy());
  assert.equal(held.code, 0);

  assert.deepEqual(await refusedWith(gw.port, Buffer.from([5, 1, 0])), { answer: '', closed: true });
  assert.deepEqual(await refusedWith(gw.port, Buffer.from([4, 1, 0, 80, 127, 0, 0, 1, 0])), { answer: '', closed: true });
  assert.deepEqual(await refusedWith(gw.port, Buffer.from([0xff, 0])), { answer: '', closed: true });
  const http = await refusedWith(gw.port, `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\n\r\n`);
  assert.match(http.answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.ok(http.closed);
  const viaCurl = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${gw.port}`, `${web.url}/full`]);
  assert.equal(viaCurl.stdout, '503', viaCurl.stderr);

  assert.equal(await refusals(gw.gw, 'max_connections'), 5);
  assert.equal(await echoOnce(held.socket, 'unaffected'), 'unaffected');
  assert.equal(gw.gw.activeSessions, 1, 'refused clients never became sessions');

  held.socket.destroy();
  assert.equal(await sessions(gw, 0), 0);
  const ok = await curl(['-x', `http://127.0.0.1:${gw.port}`, `${web.url}/room`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^hello \/room/);
});

test('a full gateway behind a load balancer (PROXY header): HTTP after the header gets 503, SOCKS is closed, a missing or untrusted header is closed', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: ['127.0.0.1/32'] } }], limits: { max_connections: 1 } });
  t.after(() => gw.close());
  const v1 = encodeProxyV1({ family: 'inet', source: { host: '198.51.100.7', port: 7000 }, dest: { host: '127.0.0.1', port: gw.port } });
  const held = await rawClient(gw.port);
  t.after(() => held.destroy());
  held.write(v1);
  assert.equal(await sessions(gw, 1), 1);

  const http = await refusedWith(gw.port, Buffer.concat([v1, Buffer.from(`GET ${web.url}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)]));
  assert.match(http.answer, /^HTTP\/1\.1 503 Service Unavailable\r\n/);
  assert.ok(http.closed);
  // The header alone first, the request in a later packet, as a balancer may send them.
  const split = await rawClient(gw.port);
  t.after(() => split.destroy());
  split.write(v1);
  await new Promise((r) => setTimeout(r, 50));
  split.write(`CONNECT 127.0.0.1:${web.port} HTTP/1.1\r\n\r\n`);
  assert.match(await readHead(split, 3_000), /^HTTP\/1\.1 503 /);
  // curl as the balancer's client: it sends the v1 header itself.
  const viaCurl = await curl(['--haproxy-protocol', '-o', '/dev/null', '-w', '%{http_code}', '-x', `http://127.0.0.1:${gw.port}`, `${web.url}/full`]);
  assert.equal(viaCurl.stdout, '503', viaCurl.stderr);

  assert.deepEqual(await refusedWith(gw.port, Buffer.concat([v1, Buffer.from([5, 1, 0])])), { answer: '', closed: true });
  assert.deepEqual(await refusedWith(gw.port, `GET ${web.url}/ HTTP/1.1\r\n\r\n`), { answer: '', closed: true }, 'a trusted peer without a header');
  const untrusted = connect({ host: '127.0.0.1', port: gw.port, localAddress: '127.0.0.2' });
  t.after(() => untrusted.destroy());
  untrusted.on('error', () => {});
  await once(untrusted, 'connect');
  untrusted.write(Buffer.concat([v1, Buffer.from(`GET ${web.url}/ HTTP/1.1\r\n\r\n`)]));
  assert.equal(await readHead(untrusted, 3_000), '', 'a header from an untrusted peer');
  assert.ok(await closedWithin(untrusted));

  assert.equal(await refusals(gw.gw, 'max_connections'), 6);
  assert.equal(gw.gw.activeSessions, 1, 'refused clients never became sessions');
});

test('max_handshakes: beyond it new clients are closed (HTTP: 503) while handshakes finish; room comes back as they do', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ limits: { max_handshakes: 2, handshake_timeout: '20s' } });
  t.after(() => gw.close());
  // Two clients in their handshake: one says nothing, one sent half a greeting.
  const silent = await rawClient(gw.port);
  t.after(() => silent.destroy());
  const half = await rawClient(gw.port);
  t.after(() => half.destroy());
  half.write(Buffer.from([5]));
  assert.equal(await sessions(gw, 2), 2);

  assert.deepEqual(await refusedWith(gw.port, Buffer.from([5, 1, 0])), { answer: '', closed: true });
  const http = await refusedWith(gw.port, 'GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  assert.match(http.answer, /^HTTP\/1\.1 503 /);
  assert.equal(await refusals(gw.gw, 'max_handshakes'), 2);
  assert.equal(await refusals(gw.gw, 'max_connections'), 0);

  // The half-done handshake completes: it is served, and its finished handshake frees a place.
  half.write(Buffer.from([1, 0]));
  assert.deepEqual([...(await readBytes(half, 2))], [5, 0]);
  half.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]));
  assert.equal((await readBytes(half, 10))[1], 0);
  assert.equal(await echoOnce(half, 'served'), 'served');
  const next = await socks5Raw(gw.port, echo.port);
  t.after(() => next.socket.destroy());
  assert.equal(next.code, 0, 'admitted once a handshake finished');
  // A client that leaves mid-handshake gives its place back too.
  const third = await rawClient(gw.port);
  t.after(() => third.destroy());
  assert.equal(await sessions(gw, 4), 4);
  third.destroy();
  assert.equal(await sessions(gw, 3), 3);
  const last = await socks5Raw(gw.port, echo.port);
  last.socket.destroy();
  assert.equal(last.code, 0);
});

test('refused clients waiting for their first byte are bounded: past the cap they are closed unread', async (t) => {
  const refusals = new AcceptRefusals({ firstByteMs: 30_000, maxWaiting: 8 });
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => refusals.refuse(s, true));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  let accepted = 0;
  server.on('connection', () => accepted++);
  const clients = await Promise.all(Array.from({ length: 11 }, () => rawClient(port)));
  t.after(() => clients.forEach((c) => c.destroy()));
  for (let n = 0; accepted < 11 && n < 250; n++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(refusals.waiting, 8);
  const closed = await Promise.all(clients.map((c) => closedWithin(c, 1_000)));
  assert.equal(closed.filter(Boolean).length, 3, 'the three past the cap were closed at once');

  const waiting = clients.filter((_, i) => !closed[i]);
  waiting[0]!.destroy();
  for (let n = 0; refusals.waiting > 7 && n < 250; n++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(refusals.waiting, 7, 'a client that leaves gives its place back');
  waiting[1]!.write('GET / HTTP/1.1\r\n\r\n');
  assert.match(await readHead(waiting[1]!, 3_000), /^HTTP\/1\.1 503 /);
  assert.ok(await closedWithin(waiting[1]!));
  waiting[1]!.destroy(); // a half-open client is held only until the bound; this one leaves
  waiting[2]!.write(Buffer.from([5, 1, 0]));
  assert.ok(await closedWithin(waiting[2]!));
  assert.equal((await readBytes(waiting[2]!, 1, 200)).length, 0, 'SOCKS: closed without a byte');
  for (let n = 0; refusals.waiting > 5 && n < 250; n++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(refusals.waiting, 5);
});

test('a refused HTTP client that keeps sending after its 503 is still closed within the bound', async (t) => {
  const refusals = new AcceptRefusals({ firstByteMs: 300, maxWaiting: 8 });
  const server = createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => refusals.refuse(s, true));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const s = await rawClient(port);
  t.after(() => s.destroy());
  s.on('error', () => {});
  s.write('GET / HTTP/1.1\r\n');
  assert.match(await readHead(s, 3_000), /^HTTP\/1\.1 503 /);
  // A header byte every 100 ms: never silent for the 300 ms the socket's timeout counts.
  let closed = false;
  s.once('close', () => (closed = true));
  const started = Date.now();
  while (!closed && Date.now() - started < 3_000) {
    s.write('X');
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(closed, 'closed, though it never went silent');
  assert.equal(refusals.waiting, 0);
});

test('a full dual-stack listener logs a refused IPv4 client as the IPv4 client it is, as every other line names it', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // An IPv6 socket: it reports an IPv4 peer as ::ffff:127.0.0.1.
  const gw = await startGateway({ listen: [{ host: '::ffff:127.0.0.1', port: 0 }], limits: { max_connections: 1 } });
  t.after(() => gw.close());
  const held = await socks5Raw(gw.port, echo.port);
  t.after(() => held.socket.destroy());
  assert.equal(held.code, 0);
  assert.deepEqual(await refusedWith(gw.port, Buffer.from([5, 1, 0])), { answer: '', closed: true });
  const refused = gw.logs.filter((l) => l.msg === 'client refused by a limit');
  assert.deepEqual(
    refused.map((l) => [l['client'], l['limit']]),
    [['127.0.0.1', 'max_connections']],
  );
  held.socket.destroy();
  const line = await gw.accessLog((l) => l['rep'] === 0, 5_000);
  assert.match(String(line?.['client']), /^127\.0\.0\.1:\d+$/, 'the access log names the same client');
});

test('an HTTP client refused its login stays in its handshake: held under max_handshakes and closed at handshake_timeout, however often it asks again', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw' }] }, limits: { max_handshakes: 1, handshake_timeout: '2s' } });
  t.after(() => gw.close());
  const get = (auth: boolean): string => `GET ${web.url}/x HTTP/1.1\r\nHost: x\r\n${auth ? 'Proxy-Authorization: Basic YWxpY2U6cHc=\r\n' : ''}\r\n`;
  /** Sends `request` on `s` and reads its whole response; returns the status code. */
  const ask = async (s: Socket, request: string): Promise<string> => (await httpExchange(s, request)).slice(9, 12);

  const guesser = await rawClient(gw.port);
  t.after(() => guesser.destroy());
  guesser.on('error', () => {});
  const accepted = performance.now();
  assert.equal(await ask(guesser, get(false)), '407');
  // Still in its handshake: the one place max_handshakes allows is taken.
  const other = await rawClient(gw.port);
  t.after(() => other.destroy());
  assert.equal(await ask(other, get(true)), '503', 'a client refused its login still counts as a handshake');
  assert.equal(await refusals(gw.gw, 'max_handshakes'), 1);
  // Asking again without a password, halfway through its deadline, does not make it a served client, nor start the
  // deadline again: the one from accept closes it. Restarted at the second request, the 2 s could not end before 2 s
  // after it (a timer never fires early); from accept they end about 1 s after it, leaving the rest to a loaded machine.
  while (performance.now() - accepted < 1_000) await new Promise((r) => setTimeout(r, 1_000 - (performance.now() - accepted)));
  const askedAgain = performance.now();
  assert.equal(await ask(guesser, get(false)), '407');
  assert.ok(await closedWithin(guesser, 4_000), 'closed at handshake_timeout, not kept alive for idle_timeout');
  const sinceAgain = performance.now() - askedAgain;
  assert.ok(sinceAgain < 1_800, `closed ${Math.round(sinceAgain)} ms after it asked again, ${Math.round(performance.now() - accepted)} ms after accept, with handshake_timeout 2s`);

  assert.equal(await sessions(gw, 0), 0);
  // A client that logs in after its 407 (a browser's retry) is served and kept alive past the deadline.
  const browser = await rawClient(gw.port);
  t.after(() => browser.destroy());
  assert.equal(await ask(browser, get(false)), '407');
  assert.equal(await ask(browser, get(true)), '200');
  await new Promise((r) => setTimeout(r, 2_300));
  assert.equal(await ask(browser, get(true)), '200', 'a logged-in connection outlives handshake_timeout');
});

test("a full gateway behind a load balancer logs a refused client by the PROXY header's address, not the balancer's", async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: ['127.0.0.1/32'] } }], limits: { max_connections: 1 } });
  t.after(() => gw.close());
  const header = (client: string): Buffer => encodeProxyV1({ family: 'inet', source: { host: client, port: 7000 }, dest: { host: '127.0.0.1', port: gw.port } });
  const held = await rawClient(gw.port);
  t.after(() => held.destroy());
  held.write(header('198.51.100.1'));
  assert.equal(await sessions(gw, 1), 1);

  // Two clients behind the one balancer, within the same second: each has its own line.
  const http = await refusedWith(gw.port, Buffer.concat([header('198.51.100.7'), Buffer.from(`GET ${web.url}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)]));
  assert.match(http.answer, /^HTTP\/1\.1 503 /);
  assert.deepEqual(await refusedWith(gw.port, Buffer.concat([header('198.51.100.8'), Buffer.from([5, 1, 0])])), { answer: '', closed: true });
  const refused = gw.logs.filter((l) => l.msg === 'client refused by a limit');
  assert.deepEqual(
    refused.map((l) => [l['client'], l['limit']]),
    [
      ['198.51.100.7', 'max_connections'],
      ['198.51.100.8', 'max_connections'],
    ],
  );
  assert.equal(await refusals(gw.gw, 'max_connections'), 2);
});
