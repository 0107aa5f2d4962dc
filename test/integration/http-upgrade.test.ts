// Absolute-form requests that offer to switch protocols. curl's h2c offer (--http2) is served as
// a plain request, and what the client sent behind it in the same read is served in turn, not
// dropped (node's parser stops at such a request). A WebSocket handshake is tunnelled once the
// origin switches, with node's HTTP client as the WebSocket client (as `ws` through
// http-proxy-agent) and a node HTTP server as the origin.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { connect, createServer, type Socket } from 'node:net';
import { startRecordingHttpServer, type RecordingHttpServer } from '../helpers/clients.js';
import { closedWithin, readBytes, startGateway, type TestGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { payload } from '../helpers/transfers.js';

/** A real web server answering "got METHOD PATH BODY" and a gateway in front of it, both closed after the test. */
async function webBehindGateway(t: TestContext): Promise<{ web: RecordingHttpServer; gw: TestGateway }> {
  const web = await startRecordingHttpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => res.end(`got ${req.method ?? ''} ${req.url ?? ''} ${body}\n`));
  });
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  return { web, gw };
}

/** Writes `raw` in one write and collects what comes back until the gateway closes (or `ms` pass). */
async function exchange(port: number, raw: string, t: TestContext, ms = 5_000): Promise<string> {
  const s = connect({ host: '127.0.0.1', port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  s.write(raw, 'latin1');
  await closedWithin(s, ms);
  return Buffer.concat(chunks).toString('latin1');
}

test('the body of a request pipelined behind an Upgrade offer reaches its origin as that body, never as a request of its own', async (t) => {
  const { web, gw } = await webBehindGateway(t);
  const host = `127.0.0.1:${web.port}`;
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  // A complete request as the second one's body, sent in a read of its own.
  const body = `GET ${web.url}/smuggled HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
  s.write(
    `GET ${web.url}/offer HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n` +
      `POST ${web.url}/second HTTP/1.1\r\nHost: ${host}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    'latin1',
  );
  for (let waited = 0; web.seen.length === 0 && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  s.write(body, 'latin1');
  await closedWithin(s, 5_000);
  assert.deepEqual(web.seen.map((r) => `${r.method} ${r.url}`), ['GET /offer', 'POST /second'], 'the second request, with its body; nothing else');
  assert.match(Buffer.concat(chunks).toString('latin1'), /got POST \/second GET /, 'its body arrived whole');
});

for (const [what, offer] of [
  // As curl --http2 sends them through a proxy, without and with -d hello.
  ['an h2c offer', 'GET {URL}/ws HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n'],
  ['an h2c offer with a body', 'POST {URL}/post HTTP/1.1\r\nHost: {HOST}\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\nContent-Length: 5\r\n\r\nhello'],
] as const) {
  test(`a request pipelined behind ${what} is served in its turn, not dropped`, async (t) => {
    const { web, gw } = await webBehindGateway(t);
    const host = `127.0.0.1:${web.port}`;
    const first = offer.replaceAll('{URL}', web.url).replaceAll('{HOST}', host);
    const second = `GET ${web.url}/second HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`;
    const answer = await exchange(gw.port, first + second, t);
    const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
    assert.deepEqual(statuses, [200, 200], `both answered: ${answer}`);
    assert.match(answer, /got (GET \/ws |POST \/post hello)\n[\s\S]*got GET \/second \n/, 'each answer is its own, in order');
    assert.deepEqual(web.seen.map((r) => r.url), [first.includes('/ws') ? '/ws' : '/post', '/second'], 'both reached the origin');
    assert.equal(web.seen[0]!.headers.upgrade, undefined, 'Upgrade is hop-by-hop: not forwarded');
  });
}

interface WebSocketOrigin {
  port: number;
  /** The handshake each connection sent, as the origin's server read it. */
  handshakes: Array<{ url: string; headers: IncomingHttpHeaders }>;
  close(): Promise<void>;
}

/**
 * A web server that switches a WebSocket handshake to an echo (the frames are not the point:
 * every byte after the 101 comes back, after "hi from origin"), and answers `refuse` (a status)
 * to one whose path is /refused.
 */
async function startWebSocketOrigin(): Promise<WebSocketOrigin> {
  const handshakes: WebSocketOrigin['handshakes'] = [];
  const server = createHttpServer((_req, res) => res.writeHead(426, { 'content-type': 'text/plain' }).end('upgrade required\n'));
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    handshakes.push({ url: req.url ?? '', headers: req.headers });
    socket.on('error', () => {});
    if (req.url === '/refused') return void socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 8\r\nConnection: close\r\n\r\nrefused\n');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\nhi from origin');
    if (head.length) socket.write(head);
    socket.pipe(socket);
  });
  const { port, close } = await listenTracked(server);
  return { port, handshakes, close };
}

/** node's HTTP client as a WebSocket client through an HTTP proxy, as `ws` with http-proxy-agent does it: absolute-form, Upgrade. */
function handshake(gwPort: number, url: string, headers: Record<string, string> = {}): Promise<{ res: IncomingMessage; socket?: Socket; head?: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      host: '127.0.0.1',
      port: gwPort,
      path: url,
      headers: { host: new URL(url).host, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
      agent: false,
    });
    req.on('upgrade', (res, socket, head) => resolve({ res, socket, head }));
    req.on('response', (res) => resolve({ res }));
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.end();
  });
}

/** Reads from `s` until `text` has all come (or 5 s pass); returns what came. */
async function readUntil(s: Socket, text: string): Promise<string> {
  let got = '';
  s.setEncoding('latin1');
  for (const deadline = Date.now() + 5_000; got.length < text.length && Date.now() < deadline; ) {
    const chunk = s.read() as string | null;
    if (chunk !== null) got += chunk;
    else await Promise.race([once(s, 'readable'), new Promise((r) => setTimeout(r, 100))]);
  }
  return got;
}

test('a WebSocket handshake in absolute-form reaches the origin with its Upgrade, and its 101 turns the connection into a tunnel both ways', async (t) => {
  const origin = await startWebSocketOrigin();
  t.after(() => origin.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close(), { timeout: 10_000 });
  const auth = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;
  const { res, socket, head } = await handshake(gw.port, `http://127.0.0.1:${origin.port}/chat?room=1`, { 'proxy-authorization': auth });
  assert.equal(res.statusCode, 101, 'switched');
  assert.ok(socket);
  t.after(() => socket.destroy());
  assert.equal(res.headers['sec-websocket-accept'], 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=', "the origin's own answer");
  socket.unshift(head ?? Buffer.alloc(0));
  assert.equal(await readUntil(socket, 'hi from origin'), 'hi from origin', 'bytes the origin sent with its 101');
  socket.write('ping');
  assert.equal(await readUntil(socket, 'ping'), 'ping', 'the tunnel carries the client’s bytes and the origin’s answer');
  const seen = origin.handshakes[0];
  assert.equal(seen?.url, '/chat?room=1');
  assert.equal(seen?.headers.upgrade, 'websocket');
  assert.match(seen?.headers.connection ?? '', /upgrade/i);
  assert.equal(seen?.headers['sec-websocket-key'], 'dGhlIHNhbXBsZSBub25jZQ==');
  assert.equal(seen?.headers['proxy-authorization'], undefined, 'the gateway’s credentials stay with the gateway');
  socket.end();
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.deepEqual([line?.['status'], line?.['rep'], line?.['user']], [101, 0, 'alice']);
  assert.ok(Number(line?.['up']) > 'ping'.length && Number(line?.['down']) > 'hi from originping'.length, `bytes counted: ${JSON.stringify(line)}`);
});

test('a WebSocket handshake the origin refuses gets the origin’s answer, then the close; one without credentials gets 407', async (t) => {
  const origin = await startWebSocketOrigin();
  t.after(() => origin.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close(), { timeout: 10_000 });
  const auth = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;
  const refused = await handshake(gw.port, `http://127.0.0.1:${origin.port}/refused`, { 'proxy-authorization': auth });
  assert.equal(refused.res.statusCode, 403);
  let body = '';
  for await (const c of refused.res) body += String(c);
  assert.equal(body, 'refused\n');
  const anonymous = await handshake(gw.port, `http://127.0.0.1:${origin.port}/chat`);
  assert.equal(anonymous.res.statusCode, 407);
  assert.equal(anonymous.res.headers['proxy-authenticate'], 'Basic realm="socksgate"');
  assert.equal(origin.handshakes.length, 1, 'nothing dialed for the refused login');
});

test('a WebSocket handshake passes the checks of any forwarded request: an expectation the gateway cannot meet gets 417, a refused login does not end the handshake', async (t) => {
  const origin = await startWebSocketOrigin();
  t.after(() => origin.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close(), { timeout: 10_000 });
  const handshakesDone = async (): Promise<number> =>
    (await gw.gw.metrics.registry.getSingleMetric('socksgate_handshake_seconds')?.get())?.values.find((v) => (v as { metricName?: string }).metricName === 'socksgate_handshake_seconds_count')?.value ?? Number.NaN;
  const url = `http://127.0.0.1:${origin.port}/chat`;
  const wrong = await handshake(gw.port, url, { 'proxy-authorization': `Basic ${Buffer.from('alice:wrong').toString('base64')}` });
  assert.equal(wrong.res.statusCode, 407);
  assert.equal(await handshakesDone(), 0, 'a refused login is no finished handshake');
  const auth = `Basic ${Buffer.from('alice:alice-pw').toString('base64')}`;
  const expecting = await handshake(gw.port, url, { 'proxy-authorization': auth, expect: 'x-telepathy' });
  assert.equal(expecting.res.statusCode, 417);
  assert.equal(origin.handshakes.length, 0, 'nothing dialed for the refused requests');
  const good = await handshake(gw.port, url, { 'proxy-authorization': auth });
  assert.equal(good.res.statusCode, 101);
  good.socket?.destroy();
  assert.equal(await handshakesDone(), 1, 'the one request that logged in');
});

/**
 * A WebSocket handshake through a fresh gateway (`config`) to a raw origin that answers it
 * `answer` and closes (with `hold`, keeps its end open): what the client got, the handshake's
 * access-log line, and whether the origin's connection was closed by the time the client's was.
 */
async function handshakeAnswered(
  t: TestContext,
  answer: string,
  { hold = false, config = {} }: { hold?: boolean; config?: Record<string, unknown> } = {},
): Promise<{ got: string; line: Record<string, unknown> | undefined; originClosed: boolean }> {
  let originSide: Socket | undefined;
  const server = createServer((s) => {
    originSide = s;
    s.on('error', () => {});
    s.once('data', () => (hold ? s.write(answer, 'latin1') : s.end(answer, 'latin1')));
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  const gw = await startGateway(config);
  t.after(() => gw.close(), { timeout: 10_000 });
  const key = 'dGhlIHNhbXBsZSBub25jZQ==';
  const got = await exchange(gw.port, `GET http://127.0.0.1:${port}/chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`, t);
  const originClosed = originSide !== undefined && (await closedWithin(originSide));
  return { got, line: await gw.accessLog((l) => l['dest'] === `127.0.0.1:${port}`), originClosed };
}

test('a WebSocket handshake refused with more than a thousand fields: the refusal reaches the client with every field, the one Connection names removed', async (t) => {
  const many = Array.from({ length: 1100 }, (_, i) => `X-F${i}: v\r\n`).join('');
  const { got } = await handshakeAnswered(t, `HTTP/1.1 403 Forbidden\r\n${many}Connection: X-F3\r\nX-Last: 1\r\nContent-Length: 2\r\n\r\nno`);
  assert.match(got, /^HTTP\/1\.1 403 /);
  assert.match(got, /\r\nX-F1099: v\r\nX-Last: 1\r\n/, 'every field passed on');
  assert.doesNotMatch(got, /\r\nX-F3: /, 'the field Connection names is removed');
});

for (const [what, answer, why] of [
  ['in a transfer coding besides chunked', 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n', /transfer coding/],
  ['with a status line in HTTP/2.0', 'HTTP/2.0 403 Forbidden\r\nContent-Length: 5\r\n\r\nhello', /version/],
] as const) {
  test(`a WebSocket handshake refused ${what} is a 502, not the origin's bytes passed on as an HTTP/1.1 answer`, async (t) => {
    const { got, line } = await handshakeAnswered(t, answer);
    assert.match(got, /^HTTP\/1\.1 502 /, got);
    assert.match(got, /\r\n\r\nbad gateway: origin /, 'says why, as a forwarded request is told');
    assert.doesNotMatch(got, /hello/);
    assert.equal(line?.['status'], 502);
    assert.match(String(line?.['error']), why);
  });
}

for (const version of ['HTTP/2.0', 'HTTP/0.9']) {
  test(`a WebSocket handshake switched to in ${version} (101) is a 502 and the origin's connection is closed, not a tunnel`, async (t) => {
    const accept = 's3pPLMBiTxaQ9kYGzzhZRbK+xOo=';
    const { got, line, originClosed } = await handshakeAnswered(t, `${version} 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\nhello`, { hold: true });
    assert.match(got, /^HTTP\/1\.1 502 /, got);
    assert.match(got, /\r\n\r\nbad gateway: origin answered in version \d\.\d\n$/, 'the same words as a forwarded request gets');
    assert.doesNotMatch(got, /hello/);
    assert.ok(originClosed, "the origin's connection is closed");
    assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
    assert.match(String(line?.['error']), /version/);
  });
}

for (const [what, answer] of [
  ['a refusal whose head does not parse (a folded field)', 'HTTP/1.1 403 Forbidden\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nno'],
  ['a 101 whose head does not parse (a folded field)', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-A: 1\r\n folded\r\nConnection: Upgrade\r\n\r\n'],
  ['a status line that does not parse', 'HTTP/1.1 4O3 Forbidden\r\nContent-Length: 2\r\n\r\nno'],
] as const) {
  test(`a WebSocket handshake answered with ${what}: the 502 says the origin's response did not parse, not "upstream failure"`, async (t) => {
    const { got, line } = await handshakeAnswered(t, answer);
    assert.match(got, /^HTTP\/1\.1 502 /, got);
    assert.match(got, /\r\n\r\nbad gateway: origin response did not parse \(HPE_[A-Z_]+\)\n$/, got);
    assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
  });
}

for (const [what, answer, why] of [
  ['a body that does not parse (an invalid chunk size)', 'HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nno\r\n0\r\n\r\n', /\r\n\r\nbad gateway: origin response did not parse \(HPE_INVALID_CHUNK_SIZE\)\n$/],
  ['no body at all (the origin closes after its head)', 'HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\n', /\r\n\r\nbad gateway: origin closed before the end of its response\n$/],
] as const) {
  test(`a WebSocket handshake refused with ${what}: a 502 in place of the refusal's head, as a forwarded request gets`, async (t) => {
    const { got, line } = await handshakeAnswered(t, answer);
    assert.match(got, /^HTTP\/1\.1 502 /, got);
    assert.match(got, why, got);
    assert.doesNotMatch(got, /403/);
    assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
    assert.ok(line?.['error'], 'the access log says why');
  });
}

test('a WebSocket refusal whose origin closes in the middle of its body: the client gets what came, and the access log says the origin closed early', async (t) => {
  const { got, line } = await handshakeAnswered(t, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\nshort');
  assert.match(got, /^HTTP\/1\.1 403 [^]*\r\nContent-Length: 10\r\n[^]*\r\n\r\nshort$/, got);
  assert.equal(line?.['status'], 403);
  assert.match(String(line?.['error']), /origin closed before the end of its response/);
});

test('a WebSocket refusal whose origin sends its head and then goes silent past idle_timeout is a 504 in its place, as a forwarded request gets', async (t) => {
  const { got, line } = await handshakeAnswered(t, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 10\r\n\r\n', { hold: true, config: { limits: { idle_timeout: '300ms' } } });
  assert.match(got, /^HTTP\/1\.1 504 [^]*\r\n\r\norigin did not answer in time\n$/, got);
  assert.deepEqual([line?.['status'], line?.['rep']], [504, 0x06]);
});

for (const [what, fields] of [
  ['without an Upgrade field', ''],
  ['with Upgrade but no Connection: upgrade', 'Upgrade: websocket\r\n'],
] as const) {
  test(`a WebSocket handshake answered 101 ${what} is a 502, not a switch to nothing, and the handshake ends with its access-log line`, async (t) => {
    const { got, line } = await handshakeAnswered(t, `HTTP/1.1 101 Switching Protocols\r\n${fields}\r\nhello`);
    assert.match(got, /^HTTP\/1\.1 502 [^]*\r\n\r\nbad gateway: origin answered 101 without an Upgrade to switch to\n$/, got);
    assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
  });
}

test('a WebSocket handshake the origin refuses, its answer passed on whole, is logged with that status and no failure', async (t) => {
  const { got, line } = await handshakeAnswered(t, 'HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno');
  assert.match(got, /^HTTP\/1\.1 403 [^]*\r\n\r\nno$/, got);
  assert.deepEqual([line?.['status'], line?.['rep'], line?.['error']], [403, 0x00, undefined]);
});

for (const [how, leave] of [
  ['closes', (s: Socket) => s.destroy()],
  ['half-closes (a FIN)', (s: Socket) => s.end()],
  // The bytes sit ahead of the FIN: unread, they hid it and the origin was held until idle_timeout.
  ['sends bytes for the new protocol and then half-closes', (s: Socket) => s.end('early frame')],
] as const) {
  test(`a client that ${how} while the origin has not answered its WebSocket handshake: the origin's connection is closed at once and the line says the client closed`, async (t) => {
    let originSide: Socket | undefined;
    let asked = (): void => {};
    const requested = new Promise<void>((resolve) => (asked = resolve));
    const server = createServer((s) => {
      originSide = s;
      s.on('error', () => {});
      s.once('data', () => asked());
    });
    const { port, close } = await listenTracked(server);
    t.after(close);
    const gw = await startGateway();
    t.after(() => gw.close(), { timeout: 10_000 });
    const s = connect({ host: '127.0.0.1', port: gw.port });
    t.after(() => s.destroy());
    s.on('error', () => {});
    await once(s, 'connect');
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    s.write(`GET http://127.0.0.1:${port}/chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    await requested;
    leave(s);
    assert.ok(originSide && (await closedWithin(originSide)), "the origin's connection is closed, not held until idle_timeout");
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${port}`);
    assert.equal(line?.['error'], 'client closed the connection');
    assert.equal(Buffer.concat(got).length, 0, 'no answer to a client that left');
  });
}

test('bytes a client sends after its WebSocket handshake, before the origin switches, reach the origin through the tunnel in order', async (t) => {
  let asked = (): void => {};
  const requested = new Promise<void>((resolve) => (asked = resolve));
  let originSide: Socket | undefined;
  let afterSwitch = '';
  const server = createServer((s) => {
    originSide = s;
    s.on('error', () => {});
    let head = '';
    s.on('data', (c: Buffer) => {
      if (head.includes('\r\n\r\n')) return void (afterSwitch += c.toString('latin1'));
      head += c.toString('latin1');
      if (head.includes('\r\n\r\n')) asked();
    });
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  // "first" in the handshake's own write, "later" once the origin has the handshake.
  s.write(`GET http://127.0.0.1:${port}/chat HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nfirst`);
  await requested;
  await new Promise<void>((resolve) => s.write('later', () => resolve()));
  originSide?.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
  for (let i = 0; i < 250 && afterSwitch.length < 'firstlater'.length; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(afterSwitch, 'firstlater');
});

test("an answer other than 101 to a WebSocket handshake is charged to the user's bandwidth, as any forwarded response is", async (t) => {
  const RATE = 256 * 1024;
  // The bucket's budget (burst + rate × elapsed, on a clock started before the bucket exists)
  // bounds what may have crossed; a reader may hold a read or two past it before it pauses.
  const BURST = RATE;
  const MARGIN = 4 * 64 * 1024;
  const body = Buffer.alloc(1024 * 1024, 'b');
  const server = createServer((s) => {
    s.on('error', () => {});
    // An origin that ignores the Upgrade and serves the resource, as most do.
    s.once('data', () => s.end(Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`), body])));
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${RATE}B/s` }] }, limits: { idle_timeout: '60s' } });
  t.after(() => gw.close(), { timeout: 10_000 });
  const t0 = performance.now();
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  let got = 0;
  let over = '';
  s.on('data', (c: Buffer) => {
    got += c.length;
    if (!over && got > budget()) over = `${got} bytes crossed, the budget was ${Math.round(budget())}`;
  });
  const auth = Buffer.from('alice:pw').toString('base64');
  s.write(`GET http://127.0.0.1:${port}/big HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nProxy-Authorization: Basic ${auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
  assert.ok(await closedWithin(s, 30_000), 'the answer ends with the close');
  assert.equal(over, '');
  assert.ok(got > body.length, `the whole answer came (${got} bytes)`);
});

test("bytes an origin sends with its 101 are charged to the user's bandwidth, and reach the client exact, in order and counted", async (t) => {
  const RATE = 256 * 1024;
  // The bucket's budget (burst + rate × elapsed, on a clock started before the bucket exists)
  // bounds what may have crossed once the last tunnel's bytes are in: what came with each 101
  // was delivered at once, but the debt it left is waited out by the reader after it, which
  // may hold a read or two past the budget before it pauses.
  const BURST = RATE;
  const MARGIN = 2 * 64 * 1024;
  const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n';
  const EARLY = 32 * 1024;
  const TUNNELS = 16; // 512 KiB: the burst and the margin together, and as much again
  const LAST = 256 * 1024; // then a tunnel whose origin goes on sending
  const frameOf = (i: number): Buffer => payload(i < TUNNELS ? EARLY : LAST, i);
  const server = createServer((s) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (c: Buffer) => {
      if (head.includes('\r\n\r\n')) return;
      head += c.toString('latin1');
      const i = Number(/^GET \S*\/(\d+) /.exec(head)?.[1]);
      // The 101 and the first bytes of the new protocol in one write, as a server that answers at once sends them.
      if (head.includes('\r\n\r\n')) s.write(Buffer.concat([Buffer.from(SWITCH), frameOf(i)]));
    });
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${RATE}B/s` }] }, limits: { idle_timeout: '60s' } });
  t.after(() => gw.close(), { timeout: 10_000 });
  const t0 = performance.now();
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  let crossed = 0;
  const auth = Buffer.from('alice:pw').toString('base64');
  /** Opens tunnel `i` and resolves with what came after the 101 once `want` bytes of it have. */
  const open = async (i: number, want: number): Promise<{ s: Socket; got: Buffer }> => {
    const s = connect({ host: '127.0.0.1', port: gw.port });
    t.after(() => s.destroy());
    s.on('error', () => {});
    await once(s, 'connect');
    s.write(`GET http://127.0.0.1:${port}/${i} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nProxy-Authorization: Basic ${auth}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`);
    let all = Buffer.alloc(0);
    let after = -1;
    for (const deadline = Date.now() + 20_000; (after < 0 || all.length - after < want) && Date.now() < deadline; ) {
      const c = await readBytes(s, 1, deadline - Date.now());
      if (c.length === 0) break;
      const more = (s.read() as Buffer | null) ?? Buffer.alloc(0);
      all = Buffer.concat([all, c, more]);
      if (after < 0 && all.includes('\r\n\r\n')) after = all.indexOf('\r\n\r\n') + 4;
    }
    assert.match(all.subarray(0, after).toString('latin1'), /^HTTP\/1\.1 101 /, `tunnel ${i} switched`);
    crossed += all.length - after;
    return { s, got: all.subarray(after) };
  };
  const opened = await Promise.all(Array.from({ length: TUNNELS }, (_, i) => open(i, EARLY)));
  opened.push(await open(TUNNELS, LAST));
  assert.ok(crossed <= budget(), `${crossed} bytes crossed, the budget was ${Math.round(budget())}`);
  for (const [i, { s, got }] of opened.entries()) {
    assert.ok(got.equals(frameOf(i)), `tunnel ${i}: the origin's bytes came whole and in order (${got.length} of ${frameOf(i).length})`);
    const client = `127.0.0.1:${s.localPort}`;
    s.end();
    const line = await gw.accessLog((l) => l['status'] === 101 && l['client'] === client, 10_000);
    assert.equal(line?.['down'], SWITCH.length + frameOf(i).length, `tunnel ${i}: the log counts them`);
  }
});
