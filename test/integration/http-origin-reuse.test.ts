// Origin connections kept between the absolute-form requests of one client connection: the
// next request to the same place, by the same path, goes on the connection the last one left
// open; requests through an upstream or a pool, another destination, another user, a reload,
// a request with a body take a new one; a kept connection goes when it idles, when the origin
// closes it, and when the client leaves; one the origin closed as a request went out on it
// does not cost the client that request.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer as createHttpServer, request, type IncomingHttpHeaders, type Server as HttpServer } from 'node:http';
import { connect, createServer, Socket, type Server } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { adminClient } from '../helpers/admin.js';
import { curl } from '../helpers/curl.js';
import { startGateway, type TestGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { listenTracked } from '../helpers/servers.js';
import { startMicrosocks } from '../helpers/upstreams.js';

/** Test instrument (counting origin): node's HTTP server, answering `<path> #<n-th request on its connection>`, keeping each connection it accepted. */
interface CountingOrigin {
  port: number;
  server: HttpServer;
  sockets: Socket[];
  /** Each connection's peer address, as it came. */
  sources: string[];
  /** Sockets closed so far. */
  closed: Set<Socket>;
  /** Each request's path and the index of the connection it came on. */
  requests: Array<{ path: string; conn: number; body: string }>;
}

async function countingOrigin(t: TestContext, keepAliveTimeout = 5_000): Promise<CountingOrigin> {
  const origin: CountingOrigin = { port: 0, server: createHttpServer(), sockets: [], sources: [], closed: new Set(), requests: [] };
  const served = new WeakMap<Socket, number>();
  origin.server.keepAliveTimeout = keepAliveTimeout;
  origin.server.on('connection', (s: Socket) => {
    origin.sockets.push(s);
    origin.sources.push(s.remoteAddress ?? '');
    s.once('close', () => origin.closed.add(s));
  });
  origin.server.on('request', (req, res) => {
    const s = req.socket as Socket;
    const n = (served.get(s) ?? 0) + 1;
    served.set(s, n);
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      origin.requests.push({ path: req.url ?? '', conn: origin.sockets.indexOf(s), body });
      // With its length, as web servers answer a HEAD too (node's own leaves it out for a HEAD, and its client then closes).
      const answer = `${req.url} #${n}`;
      res.setHeader('content-length', Buffer.byteLength(answer));
      res.end(answer);
    });
  });
  const { port, close } = await listenTracked(origin.server);
  origin.port = port;
  t.after(close);
  return origin;
}

interface Answer {
  status: number;
  body: string;
}

/** A real client: node's own, one keep-alive connection to the gateway as its proxy. */
function proxyClient(t: TestContext, gw: TestGateway): (url: string, init?: { method?: string; body?: string; headers?: IncomingHttpHeaders }) => Promise<Answer> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      const r = request({ host: gw.host, port: gw.port, path: url, method: init.method ?? 'GET', agent, headers: { host: new URL(url).host, ...init.headers } }, (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end(init.body);
    });
}

async function gateway(t: TestContext, partial: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway(partial);
  t.after(() => gw.close());
  return gw;
}

/** Waits (bounded) until `cond` holds. */
async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  for (const end = Date.now() + ms; !cond(); ) {
    if (Date.now() > end) assert.fail(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const url = (o: CountingOrigin, path: string): string => `http://127.0.0.1:${o.port}${path}`;

test('curl fetching three URLs of one origin through the gateway: one origin connection carries all three, and the log counts its bytes exactly', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const got = await curl(['-x', `http://${gw.host}:${gw.port}`, url(origin, '/a'), url(origin, '/b'), url(origin, '/c')]);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(got.stdout, '/a #1/b #2/c #3', 'answered in order, each on the connection the one before left');
  assert.equal(origin.sockets.length, 1, 'one origin connection');
  const s = origin.sockets[0]!;
  await until(() => gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').length === 3, 'three access-log lines');
  const lines = gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http');
  assert.deepEqual(
    lines.map((l) => [l.status, l.rep, l.outbound]),
    [
      [200, 0, 'direct'],
      [200, 0, 'direct'],
      [200, 0, 'direct'],
    ],
  );
  const sum = (k: string): number => lines.reduce((n, l) => n + (l[k] as number), 0);
  assert.equal(sum('up'), s.bytesRead, 'up: what the origin read, request by request');
  assert.equal(sum('down'), s.bytesWritten, 'down: what the origin wrote');
  assert.ok(lines.every((l) => (l.up as number) > 0 && (l.down as number) > 0));
  assert.equal(await metricValue(gw.gw, 'socksgate_http_origin_reuses_total'), 2, 'two requests sent on a kept connection');
  assert.equal(await metricValue(gw.gw, 'socksgate_outbound_requests_total', { outbound: 'direct', result: 'ok' }), 1, 'one dial');
  // curl is gone: so is the origin connection it kept.
  await until(() => origin.closed.has(s), 'the kept origin connection closed with its client');
});

test('only the last path is kept: a request elsewhere closes it, and coming back dials anew', async (t) => {
  const a = await countingOrigin(t);
  const b = await countingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(a, '/1')), { status: 200, body: '/1 #1' });
  assert.deepEqual(await get(url(a, '/2')), { status: 200, body: '/2 #2' });
  assert.deepEqual(await get(url(b, '/3')), { status: 200, body: '/3 #1' });
  await until(() => a.closed.has(a.sockets[0]!), "a's connection closed once b's request took the slot");
  assert.deepEqual(await get(url(a, '/4')), { status: 200, body: '/4 #1' });
  assert.equal(a.sockets.length, 2);
  assert.equal(b.sockets.length, 1);
});

test("a pool's requests each pick their member: none is kept, and rotation goes on request by request", async (t) => {
  const origin = await countingOrigin(t);
  const members = await Promise.all(['127.0.0.2', '127.0.0.3'].map((host) => startMicrosocks({ host })));
  for (const m of members) t.after(() => m.close());
  const gw = await gateway(t, {
    upstreams: { crawl: { type: 'pool', strategy: 'round-robin', members: members.map((m) => `socks5://${m.host}:${m.port}`) } },
    default: 'crawl',
  });
  const get = proxyClient(t, gw);
  for (let i = 1; i <= 4; i++) assert.deepEqual(await get(url(origin, `/${i}`)), { status: 200, body: `/${i} #1` });
  assert.equal(origin.sockets.length, 4, 'a connection per request');
  const sources = origin.sources;
  assert.deepEqual(new Set(sources), new Set(['127.0.0.2', '127.0.0.3']), 'both members');
  assert.notEqual(sources[0], sources[1], 'each request to the next member');
  assert.notEqual(sources[2], sources[3]);
});

test('another user on the same client connection, or a reload, takes a new origin connection', async (t) => {
  const origin = await countingOrigin(t);
  const users = { users: [{ username: 'alice', password: 'pw' }, { username: 'bob', password: 'pw' }] };
  const configOf = (extra: Record<string, unknown> = {}) => parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], auth: users, ...extra }), '/tmp/socksgate-test.yaml', {});
  const gw = await gateway(t, { auth: users });
  const get = proxyClient(t, gw);
  const as = (user: string) => ({ headers: { 'proxy-authorization': `Basic ${Buffer.from(`${user}:pw`).toString('base64')}` } });
  assert.deepEqual(await get(url(origin, '/1'), as('alice')), { status: 200, body: '/1 #1' });
  assert.deepEqual(await get(url(origin, '/2'), as('alice')), { status: 200, body: '/2 #2' });
  assert.deepEqual(await get(url(origin, '/3'), as('bob')), { status: 200, body: '/3 #1' }, "bob's request does not ride alice's connection");
  await gw.gw.reload(configOf({ rules: [{ name: 'after-reload', cidrs: ['127.0.0.0/8'], action: 'direct' }] }));
  assert.deepEqual(await get(url(origin, '/4'), as('bob')), { status: 200, body: '/4 #1' }, 'a new connection after the reload');
  assert.deepEqual(await get(url(origin, '/5'), as('bob')), { status: 200, body: '/5 #2' }, 'and that one kept in turn');
  assert.equal(origin.sockets.length, 3);
  const line = await gw.accessLog((l) => l.msg === 'session end' && typeof l.dest === 'string' && l.status === 200 && l.rule === 'after-reload');
  assert.ok(line, 'requests after the reload are routed by its rules');
});

test('a request with a body never goes on a kept connection: it gets one of its own, and its body arrives once', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/1')), { status: 200, body: '/1 #1' });
  assert.deepEqual(await get(url(origin, '/up'), { method: 'POST', body: 'hello' }), { status: 200, body: '/up #1' });
  assert.deepEqual(
    origin.requests.map((r) => [r.path, r.conn, r.body]),
    [
      ['/1', 0, ''],
      ['/up', 1, 'hello'],
    ],
  );
  // The POST's own connection ended cleanly: the next GET rides it.
  assert.deepEqual(await get(url(origin, '/2')), { status: 200, body: '/2 #2' });
  assert.equal(origin.sockets.length, 2);
});

test('a POST without a body does not go on a kept connection (it could not be sent again); a PUT without one does', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/1')), { status: 200, body: '/1 #1' });
  assert.deepEqual(await get(url(origin, '/p'), { method: 'POST' }), { status: 200, body: '/p #1' }, 'a connection of its own');
  assert.deepEqual(await get(url(origin, '/u'), { method: 'PUT' }), { status: 200, body: '/u #2' }, "on the POST's, kept after it");
  assert.equal(origin.sockets.length, 2);
});

test('a kept connection is closed once it has idled for idle_timeout, and the next request dials anew', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t, { limits: { idle_timeout: '300ms' } });
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/1')), { status: 200, body: '/1 #1' });
  await until(() => origin.closed.has(origin.sockets[0]!), 'the idle kept connection closed', 3_000);
  assert.deepEqual(await get(url(origin, '/2')), { status: 200, body: '/2 #1' });
});

test('an origin that closes the kept connection while it idles: the next request is served on a new one', async (t) => {
  const origin = await countingOrigin(t, 100);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/1')), { status: 200, body: '/1 #1' });
  await until(() => origin.closed.has(origin.sockets[0]!), "the origin's keep-alive timeout");
  await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(await get(url(origin, '/2')), { status: 200, body: '/2 #1' });
  assert.equal(origin.sockets.length, 2);
});

/**
 * Test instrument (raw origin): records what each connection sent, in the order they came,
 * and calls `act` with each chunk as it comes: the socket, the connection's index, and how
 * many request heads that connection has sent so far. `server` can stop listening alone.
 */
async function rawOrigin(t: TestContext, act: (s: Socket, at: number, heads: number, chunk: string) => void): Promise<{ port: number; received: string[]; server: Server }> {
  const received: string[] = [];
  const server = createServer((s) => {
    const at = received.push('') - 1;
    s.on('error', () => {});
    s.on('data', (chunk: Buffer) => {
      received[at] += chunk.toString('latin1');
      act(s, at, received[at]!.split('\r\n\r\n').length - 1, chunk.toString('latin1'));
    });
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  return { port, received, server };
}

/**
 * Test instrument (resetting origin): answers the first request on each connection keep-alive,
 * and resets a connection when a second request arrives on it, unanswered: an origin whose
 * keep-alive timeout ends just as the gateway sends on the connection.
 */
async function resettingOrigin(
  t: TestContext,
  second = (s: Socket): void => void s.resetAndDestroy(),
): Promise<{ port: number; received: string[]; stopListening: () => void }> {
  const answered = new WeakSet<Socket>();
  const { port, received, server } = await rawOrigin(t, (s, at, heads) => {
    if (heads >= 1 && !answered.has(s)) {
      answered.add(s);
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${2 + String(at).length}\r\n\r\nok${at}`);
    } else if (heads >= 2) second(s);
  });
  // Accepts no more, the connections it has left as they are.
  return { port, received, stopListening: () => void server.close() };
}

test('an origin resetting the kept connection as a GET goes out on it: the GET is sent again on a new connection, answered once, logged once', async (t) => {
  const { origin, gw, get, at } = await firstGetAnswered(t);
  assert.deepEqual(await get(`${at}/2`), { status: 200, body: 'ok1' }, 'answered from the second connection');
  assert.equal(origin.received.length, 2);
  assert.match(origin.received[0]!, /^GET \/1 .*GET \/2 /s, 'the first connection had it, and reset');
  assert.match(origin.received[1]!, /^GET \/2 HTTP\/1\.1\r\n/);
  await until(() => gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').length >= 2, 'two lines');
  await new Promise((r) => setTimeout(r, 100));
  const lines = gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http');
  assert.equal(lines.length, 2, 'one line per request, none for the attempt that was reset');
  assert.equal(lines[1]!.status, 200);
  assert.equal(lines[1]!.error, undefined);
  assert.equal(lines[1]!.up, Buffer.byteLength(origin.received[1]!, 'latin1'), 'up: the bytes of the send that reached the origin');
  assert.equal(lines[1]!.down, 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok1'.length);
});

/**
 * Test instrument (late HEAD body origin): answers a HEAD with its head only, as it should, but
 * then sends a body after it, which reaches the gateway only once the next request has gone
 * out on that connection: written just before that request's own answer. GETs are answered
 * `<path> #<n-th connection>`.
 */
async function lateHeadBodyOrigin(t: TestContext): Promise<{ port: number; received: string[] }> {
  const received: string[] = [];
  const server = createServer((s) => {
    const at = received.push('') - 1;
    s.on('error', () => {});
    let buffered = '';
    let owed = '';
    s.on('data', (chunk: Buffer) => {
      received[at] += chunk.toString('latin1');
      buffered += chunk.toString('latin1');
      for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
        const [method, path] = buffered.slice(0, end).split(' ', 2);
        buffered = buffered.slice(end + 4);
        if (method === 'HEAD') {
          s.write('HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n');
          owed = 'BODY';
        } else {
          const body = `${path} #${at}`;
          s.write(`${owed}HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
          owed = '';
        }
      }
    });
  });
  const { port, close } = await listenTracked(server);
  t.after(close);
  return { port, received };
}

test('an origin that sends a body after its answer to a HEAD: the GET that follows on the kept connection is sent again on a new one, not answered 502', async (t) => {
  const origin = await lateHeadBodyOrigin(t);
  const gw = await gateway(t);
  const ask = proxyClient(t, gw);
  const at = `http://127.0.0.1:${origin.port}`;
  assert.deepEqual(await ask(`${at}/h`, { method: 'HEAD' }), { status: 200, body: '' });
  assert.deepEqual(await ask(`${at}/g`), { status: 200, body: '/g #1' }, 'answered from a new connection');
  assert.equal(origin.received.length, 2);
  assert.match(origin.received[0]!, /^HEAD \/h .*GET \/g /s, 'the first connection had it, and answered it after stray bytes');
  assert.match(origin.received[1]!, /^GET \/g HTTP\/1\.1\r\n/);
  await until(() => gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').length >= 2, 'two lines');
  const lines = gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http');
  assert.equal(lines.length, 2, 'one line per request');
  assert.equal(lines[1]!.status, 200);
  assert.equal(lines[1]!.error, undefined);
});

test('a GET sent again whose new connection cannot be made: a 502, logged with the bytes its first send moved', async (t) => {
  const { origin, gw, get, at } = await firstGetAnswered(t);
  origin.stopListening();
  assert.equal((await get(`${at}/2`)).status, 502);
  await until(() => gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').length >= 2, 'two lines');
  const line = gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http')[1]!;
  assert.equal(line.status, 502);
  const second = origin.received[0]!.slice(origin.received[0]!.indexOf('GET /2 '));
  assert.equal(line.up, Buffer.byteLength(second, 'latin1'), 'up: the GET written on the kept connection before its reset');
  assert.equal(line.down, 0);
});

test('the client leaving closes the origin connection kept for it', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const client = connect(gw.port, gw.host);
  await once(client, 'connect');
  client.write(`GET ${url(origin, '/1')} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`);
  await once(client, 'data');
  await until(() => origin.sockets.length === 1, 'dialed');
  assert.ok(!origin.closed.has(origin.sockets[0]!), 'kept while the client stays');
  client.destroy();
  await until(() => origin.closed.has(origin.sockets[0]!), 'closed once the client left');
});


test('through an upstream, each request dials anew: a provider endpoint that gives each connection another exit keeps rotating request by request', async (t) => {
  const origin = await countingOrigin(t);
  const hops = await Promise.all(['127.0.0.2', '127.0.0.3'].map((host) => startMicrosocks({ host })));
  for (const m of hops) t.after(() => m.close());
  const [single, other] = hops as [(typeof hops)[0], (typeof hops)[0]];
  const one = await gateway(t, { upstreams: { hop: { type: 'socks5', host: single.host, port: single.port } }, default: 'hop' });
  const get = proxyClient(t, one);
  for (let i = 1; i <= 3; i++) assert.deepEqual(await get(url(origin, `/${i}`)), { status: 200, body: `/${i} #1` });
  assert.equal(origin.sockets.length, 3, 'a connection per request through the upstream');
  // A chain too, its first hop fixed.
  const chained = await gateway(t, {
    upstreams: { first: { type: 'socks5', host: other.host, port: other.port }, exit: { type: 'socks5', host: single.host, port: single.port, via: 'first' } },
    default: 'exit',
  });
  const viaChain = proxyClient(t, chained);
  for (let i = 1; i <= 2; i++) assert.deepEqual(await viaChain(url(origin, `/c${i}`)), { status: 200, body: `/c${i} #1` });
  assert.equal(origin.sockets.length, 5);
});

test('a hundred requests on one kept connection: one origin connection, every answer in order, no listener left behind on it', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => void warnings.push(w);
  process.on('warning', onWarning);
  t.after(() => process.off('warning', onWarning));
  let listeners = 0;
  for (let i = 1; i <= 100; i++) {
    assert.deepEqual(await get(url(origin, `/${i}`)), { status: 200, body: `/${i} #${i}` });
    // The gateway's side of the origin connection, found through the gateway's own listeners on it.
    if (i === 2) listeners = gwSideListeners(origin);
  }
  assert.equal(origin.sockets.length, 1);
  assert.deepEqual(warnings.map((w) => w.message), [], 'no MaxListenersExceeded warning');
  assert.equal(gwSideListeners(origin), listeners, 'as many listeners after 100 requests as after 2');
});

/** Listeners on the gateway's end of the origin's one connection (the peer of the origin's socket, in this process). */
function gwSideListeners(origin: CountingOrigin): number {
  const s = origin.sockets[0]!;
  const peer = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().find(
    (h): h is Socket => h instanceof Socket && h.localPort === s.remotePort && h.remotePort === s.localPort,
  );
  assert.ok(peer, "the gateway's end of the origin connection");
  return peer.eventNames().reduce((n, e) => n + peer.listenerCount(e), 0);
}

/** The gateway's end of a loopback connection whose other end is `s` (in this process). */
function gwPeer(s: Socket): Socket | undefined {
  return (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().find(
    (h): h is Socket => h instanceof Socket && h.localPort === s.remotePort && h.remotePort === s.localPort,
  );
}

test('an origin resetting its connection while the end of its response waits for a slow client: the gateway goes on, and the client gets the whole response', async (t) => {
  let originSide: Socket | undefined;
  let request = '';
  const server = createServer((s) => {
    originSide = s;
    s.on('error', () => {});
    s.on('data', (c: Buffer) => (request += c.toString('latin1')));
  });
  const listening = await listenTracked(server);
  t.after(listening.close);
  const gw = await gateway(t);
  const client = connect(gw.port, gw.host);
  t.after(() => client.destroy());
  await once(client, 'connect');
  client.pause(); // reads nothing for now: the gateway's writes to it back up
  client.write(`GET http://127.0.0.1:${listening.port}/big HTTP/1.1\r\nHost: 127.0.0.1:${listening.port}\r\n\r\n`);
  await until(() => request.includes('\r\n\r\n'), 'the request at the origin');
  const origin = originSide!;
  origin.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n');
  const toClient = gwPeer(client);
  const fromOrigin = gwPeer(origin);
  assert.ok(toClient && fromOrigin, "the gateway's ends of both connections");
  // Chunks well below a socket's highWaterMark, each read by the gateway before the next goes,
  // until the client's connection holds bytes the kernel would not take: the response's end
  // then goes through the gateway without pausing it, and waits there for the client.
  const chunk = `${(8192).toString(16)}\r\n${'a'.repeat(8192)}\r\n`;
  let sent = 0;
  for (let i = 0; i < 4_000 && toClient.writableLength === 0; i++) {
    origin.write(chunk);
    sent += 8192;
    await until(() => fromOrigin.bytesRead === origin.bytesWritten, 'the chunk read by the gateway');
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(toClient.writableLength > 0, "the client's connection backed up");
  origin.write('0\r\n\r\n');
  // The response is whole at the gateway (node's client has let go of the connection), its
  // last bytes not yet with the client: now the origin resets.
  await until(() => fromOrigin.listenerCount('data') === 0, "the origin's response complete at the gateway");
  origin.resetAndDestroy();
  await until(() => fromOrigin.destroyed, 'the reset seen by the gateway');
  client.resume();
  let got = '';
  client.setEncoding('latin1');
  client.on('data', (c: string) => (got += c));
  await until(() => got.endsWith('0\r\n\r\n'), 'the whole response at the client');
  const body = got.slice(got.indexOf('\r\n\r\n') + 4);
  assert.equal(body.split('a').length - 1, sent, 'every byte of the body');
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.status === 200);
  assert.equal(line?.error, undefined);
  // And the gateway is still there for the next request.
  const other = await countingOrigin(t);
  const next = await curl(['-s', '-x', `http://${gw.host}:${gw.port}`, url(other, '/next')]);
  assert.equal(next.stdout, '/next #1', next.stderr);
});

test('an operator killing a connection whose GET waits on a kept origin connection: nothing is dialed again, and the line says "killed"', async (t) => {
  // Answers the first request on each connection, and leaves a second one unanswered.
  const { port, received } = await rawOrigin(t, (s, _at, heads) => {
    if (heads === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const { gw, api, at } = await twoGetsThroughAdminGateway(t, port, 'kill-token-0123456789');
  await until(() => received[0]!.includes('GET /2 '), 'the second GET at the origin, on the kept connection');
  const open = (await api.request('GET', '/api/connections')).json as Array<{ id: number }>;
  assert.equal(open.length, 1);
  assert.equal((await api.request('DELETE', `/api/connections/${open[0]!.id}`)).status, 200);
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.status !== 200);
  assert.ok(line, 'the second request logged');
  assert.equal(line.error, 'killed');
  assert.equal(gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').length, 2);
  // A dial for the killed request came before the line; a later client's comes after it.
  const later = await curl(['-s', '-x', `http://${gw.host}:${gw.port}`, `${at}/3`]);
  assert.equal(later.stdout, 'ok', later.stderr);
  assert.deepEqual(
    received.map((r) => r.split(' ', 2).join(' ')),
    ['GET /1', 'GET /3'],
    'no origin connection for the killed request',
  );
});

test('stopping the gateway closes the origin connections kept for idle clients, and the stop does not wait for them', async (t) => {
  const origin = await countingOrigin(t);
  // A drain far past the test's own timeout: a stop that waited on a kept connection would fail it by name.
  const gw = await startGateway({ limits: { drain_timeout: '5m', idle_timeout: '5m' } });
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/1')), { status: 200, body: '/1 #1' });
  assert.ok(!origin.closed.has(origin.sockets[0]!), 'kept while the client idles');
  await gw.close();
  await until(() => origin.closed.has(origin.sockets[0]!), 'the kept connection closed by the stop');
});

test('a HEAD answered with its length leaves the connection kept for the GET after it, and a GET for the HEAD after it', async (t) => {
  const origin = await countingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(url(origin, '/h'), { method: 'HEAD' }), { status: 200, body: '' });
  assert.deepEqual(await get(url(origin, '/g')), { status: 200, body: '/g #2' });
  assert.deepEqual(await get(url(origin, '/h2'), { method: 'HEAD' }), { status: 200, body: '' });
  assert.deepEqual(await get(url(origin, '/g2')), { status: 200, body: '/g2 #4' });
  assert.equal(origin.sockets.length, 1);
});

test('a kept connection that gives an interim response (103) and then resets: the GET reached the origin, and is not sent again', async (t) => {
  // Each second request on a connection: a 103, then the reset.
  const { port, received } = await resettingOrigin(t, (s) =>
    s.write('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n', () => setTimeout(() => s.resetAndDestroy(), 20)),
  );
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  assert.deepEqual(await get(`http://127.0.0.1:${port}/1`), { status: 200, body: 'ok0' });
  const second = await get(`http://127.0.0.1:${port}/2`);
  assert.equal(second.status, 502, 'the failure is answered, not hidden behind a second send');
  assert.equal(received.length, 1, 'no second connection: the origin saw the GET once');
  assert.equal(received[0]!.match(/GET \/2 /g)?.length, 1);
});

test('a GET sent again after its kept connection was reset: the connections list counts the bytes of the new send as they cross', async (t) => {
  const head = 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n';
  const part = 'x'.repeat(1000);
  // The first connection answers its first GET and resets at the second; the next one sends part of a long answer, and holds.
  const { port, received } = await rawOrigin(t, (s, at, heads) => {
    if (at === 0 && heads === 1) s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    else if (at === 0 && heads === 2) s.resetAndDestroy();
    else if (at === 1 && heads === 1) s.write(head + part);
  });
  const { api } = await twoGetsThroughAdminGateway(t, port, 'live-token-0123456789');
  await until(() => received.length === 2 && received[1]!.includes('GET /2 '), 'the GET sent again on a new connection');
  let open: Array<{ bytes: { up: number; down: number } }> = [];
  for (let i = 0; i < 100; i++) {
    open = (await api.request('GET', '/api/connections')).json as Array<{ bytes: { up: number; down: number } }>;
    if (open[0] !== undefined && open[0].bytes.down >= head.length + part.length) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(open.length, 1);
  assert.equal(open[0]!.bytes.up, Buffer.byteLength(received[1]!, 'latin1'), 'up: the new send, not the one the reset cut');
  assert.equal(open[0]!.bytes.down, head.length + part.length, 'down: what the new connection brought so far');
});

/**
 * `server` as the origin behind a gateway with its admin API, and a raw client that has had
 * GET /1 answered and has sent GET /2 on the same connection (which rides the kept one).
 */
async function twoGetsThroughAdminGateway(t: TestContext, port: number, token: string): Promise<{ gw: TestGateway; api: ReturnType<typeof adminClient>; client: Socket; at: string }> {
  const gw = await gateway(t, { metrics: { host: '127.0.0.1', port: 0, api_token: token } });
  const api = adminClient(gw.gw, token);
  const client = connect(gw.port, gw.host);
  t.after(() => client.destroy());
  client.on('error', () => {});
  await once(client, 'connect');
  const at = `http://127.0.0.1:${port}`;
  client.write(`GET ${at}/1 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  await once(client, 'data');
  client.write(`GET ${at}/2 HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  return { gw, api, client, at };
}

/** A resetting origin behind a gateway, and a keep-alive client whose GET /1 it answered: the connection is kept. */
async function firstGetAnswered(t: TestContext): Promise<{ origin: Awaited<ReturnType<typeof resettingOrigin>>; gw: TestGateway; get: ReturnType<typeof proxyClient>; at: string }> {
  const origin = await resettingOrigin(t);
  const gw = await gateway(t);
  const get = proxyClient(t, gw);
  const at = `http://127.0.0.1:${origin.port}`;
  assert.deepEqual(await get(`${at}/1`), { status: 200, body: 'ok0' });
  return { origin, gw, get, at };
}

test('an HTTP/1.0 response with Transfer-Encoding is passed on, and its connection closed, not kept for the next request (RFC 9112 §6.1: faulty framing)', async (t) => {
  // What a keep-alive HTTP/1.0 hop behind the origin reads as a body to the close, this one as chunks:
  // the next request on the connection would get an answer framed by either.
  const origin = await rawOrigin(t, (s, at, _heads, chunk) => {
    if (chunk.endsWith('\r\n\r\n')) s.write(`HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nok${at}\r\n0\r\n\r\n`);
  });
  const gw = await gateway(t);
  const ask = proxyClient(t, gw);
  const at = `http://127.0.0.1:${origin.port}`;
  assert.deepEqual(await ask(`${at}/1`), { status: 200, body: 'ok0' });
  assert.deepEqual(await ask(`${at}/2`), { status: 200, body: 'ok1' }, 'answered on a new connection');
  assert.equal(origin.received.length, 2);
  assert.doesNotMatch(origin.received[0]!, /GET \/2 /, 'nothing more sent on the first connection');
});
