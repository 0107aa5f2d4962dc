// The HTTP proxy front with curl as the real client: CONNECT tunnels (-p), absolute-form
// forwarding, Basic auth carrying session parameters, keep-alive with each request routed.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type IncomingMessage } from 'node:http';
import { curl } from '../helpers/curl.js';
import { echoAndGateway, rawClient, readBytes, startGateway, startHttpServer } from '../helpers/index.js';
import { readHead } from '../helpers/raw-proxy.js';
import { listenTracked } from '../helpers/servers.js';

test('curl -x http:// fetches absolute-form and through CONNECT (-p); each is one access-log line', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const plain = await curl(['-x', `http://127.0.0.1:${gw.port}`, `${web.url}/plain`]);
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /^hello \/plain from 127\.0\.0\.1/);
  const tunneled = await curl(['-p', '-x', `http://127.0.0.1:${gw.port}`, `${web.url}/tunnel`]);
  assert.equal(tunneled.code, 0, tunneled.stderr);
  assert.match(tunneled.stdout, /^hello \/tunnel from/);
  const a = await gw.accessLog((l) => l.protocol === 'http' && l.status === 200 && Number(l.down) > 0 && l.dest === `127.0.0.1:${web.port}` && l.rep === 0, 5_000);
  assert.ok(a, 'an access-log line for the forwarded request');
  const lines = (): Array<Record<string, unknown>> => gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http');
  await gw.accessLog(() => lines().length >= 2);
  assert.equal(lines().length, 2);
});

test('CONNECT relays raw bytes both ways, bytes sent behind the head first', async (t) => {
  const { echo, gw } = await echoAndGateway(t);
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\nearly`);
  const head = 'HTTP/1.1 200 Connection established\r\n\r\n';
  const got = await readBytes(s, head.length + 5);
  assert.equal(got.toString(), `${head}early`);
  s.end('late');
  assert.equal((await readBytes(s, 4)).toString(), 'late');
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.cmd === 'connect');
  assert.equal(line?.up, 9);
  assert.equal(line?.down, 9);
  assert.equal(line?.status, 200);
});

test('a CONNECT head split over several writes is served as one whole in the first write: the same answer, bytes and access-log line', async (t) => {
  const { echo, gw } = await echoAndGateway(t);
  const head = `CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\nUser-Agent: t\r\n\r\n`;
  const lines: Array<Record<string, unknown>> = [];
  for (const pieces of [[`${head}early`], [head.slice(0, 9), head.slice(9, 40), `${head.slice(40)}early`]]) {
    const s = await rawClient(gw.port);
    t.after(() => s.destroy());
    for (const p of pieces) {
      s.write(p);
      await new Promise((r) => setTimeout(r, 30));
    }
    const answer = 'HTTP/1.1 200 Connection established\r\n\r\n';
    assert.equal((await readBytes(s, answer.length + 5)).toString(), `${answer}early`, `${pieces.length} writes`);
    s.end('late');
    assert.equal((await readBytes(s, 4)).toString(), 'late');
    const n = lines.length;
    const line = await gw.accessLog((l) => l.protocol === 'http' && l.cmd === 'connect' && !lines.includes(l) && l.sid !== lines[n - 1]?.sid);
    assert.ok(line, `an access-log line for the tunnel in ${pieces.length} writes`);
    lines.push(line);
  }
  const fieldsOf = (l: Record<string, unknown>): Record<string, unknown> => {
    const { sid: _s, time: _t, ms: _m, client: _c, pid: _p, hostname: _h, ...rest } = l;
    return rest;
  };
  assert.deepEqual(fieldsOf(lines[1]!), fieldsOf(lines[0]!));
  assert.equal(lines[0]!.up, 9);
  assert.equal(lines[0]!.down, 9);
});

test('a CONNECT pipelined behind a GET whose response outgrows the socket buffer: the whole response, then the tunnel', async (t) => {
  const body = Buffer.alloc(4 * 1024 * 1024, 0x62);
  const origin = await listenTracked(createServer((_req, res) => res.end(body)));
  t.after(() => origin.close());
  const { echo, gw } = await echoAndGateway(t);
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  // One write: node parses the CONNECT head while the GET's response is still to be written.
  s.write(`GET http://127.0.0.1:${origin.port}/big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nCONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\nearly`);
  const head = await readHead(s, 5_000);
  assert.match(head, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(head, new RegExp(`\r\ncontent-length: ${body.length}\r\n`, 'i'));
  assert.equal((await readBytes(s, body.length, 10_000)).length, body.length, 'the whole response body');
  const established = 'HTTP/1.1 200 Connection established\r\n\r\n';
  assert.equal((await readBytes(s, established.length + 5)).toString(), `${established}early`);
});

test('Proxy-Authorization Basic: missing or wrong → 407 with Proxy-Authenticate; alice-session-K1 passes as alice', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 's3cret' }] } });
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const none = await curl(['-i', '-x', proxy, `${web.url}/x`]);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, /^HTTP\/1\.1 407 /);
  assert.match(none.stdout, /^proxy-authenticate: Basic realm="socksgate"\r$/im);
  const wrong = await curl(['-p', '-x', proxy, '--proxy-user', 'alice:nope', `${web.url}/x`]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /407/);
  const right = await curl(['-x', proxy, '--proxy-user', 'alice-session-K1:s3cret', `${web.url}/a`]);
  assert.equal(right.code, 0, right.stderr);
  assert.match(right.stdout, /^hello \/a/);
  const tunnel = await curl(['-p', '-x', proxy, '--proxy-user', 'alice:s3cret', `${web.url}/b`]);
  assert.equal(tunnel.code, 0, tunnel.stderr);
  assert.match(tunnel.stdout, /^hello \/b/);
  assert.ok(await gw.accessLog((l) => l.protocol === 'http' && l.user === 'alice' && l.status === 200));
  assert.ok(await gw.accessLog((l) => l.protocol === 'http' && l.status === 407 && l.rep === 2));
  assert.ok(!JSON.stringify(gw.logs).includes('s3cret'), 'no password in the logs');
});

/** GETs `paths` one after another through one keep-alive connection to the proxy. */
async function getAll(proxyPort: number, urls: string[]): Promise<Array<{ status: number; body: string; port: number }>> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const out = [];
    for (const url of urls) {
      const res = await new Promise<IncomingMessage>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: proxyPort, path: url, agent, headers: { host: new URL(url).host } }, resolve);
        req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
        req.on('error', reject);
        req.end();
      });
      const port = res.socket.localPort ?? 0;
      let body = '';
      for await (const c of res) body += String(c);
      out.push({ status: res.statusCode ?? 0, body, port });
    }
    return out;
  } finally {
    agent.destroy();
  }
}

test('keep-alive: several absolute-form requests on one connection, each routed on its own', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ rules: [{ name: 'no-two', cidrs: ['127.0.0.2/32'], action: 'block' }] });
  t.after(() => gw.close());
  const got = await getAll(gw.port, [`${web.url}/1`, `http://127.0.0.2:${web.port}/blocked`, `${web.url}/3`, 'http://127.0.0.1:1/bad-port']);
  assert.deepEqual(
    got.map((r) => r.status),
    [200, 403, 200, 502],
  );
  assert.match(got[0]!.body, /^hello \/1/);
  assert.match(got[1]!.body, /not allowed/);
  assert.match(got[2]!.body, /^hello \/3/);
  assert.equal(new Set(got.map((r) => r.port)).size, 1, 'one client connection carried all of them');
  const blocked = await gw.accessLog((l) => l.status === 403);
  assert.equal(blocked?.rule, 'no-two');
  assert.equal(blocked?.rep, 2);
  const sids = gw.logs.filter((l) => l.msg === 'session end' && l.protocol === 'http').map((l) => l.sid);
  assert.equal(sids.length, 4);
  assert.equal(new Set(sids).size, 1);
});

test('hop-by-hop headers are not forwarded; end-to-end ones are; bodies go both ways', async (t) => {
  const { createServer } = await import('node:http');
  const { listenTracked } = await import('../helpers/servers.js');
  let seen: Record<string, string | string[] | undefined> = {};
  const origin = createServer((req, res) => {
    seen = req.headers;
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      res.setHeader('keep-alive', 'timeout=99');
      res.setHeader('x-origin', 'yes');
      res.end(`got ${body.length}`);
    });
  });
  const o = await listenTracked(origin);
  t.after(() => o.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const r = await curl([
    // -U: a client configured with a login sends Proxy-Authorization whether or not the gateway asks for one.
    '-i', '-v', '-x', `http://127.0.0.1:${gw.port}`, '-U', 'alice:pw', '--data-binary', 'x'.repeat(100_000),
    '-H', 'Connection: x-secret', '-H', 'X-Secret: 1', '-H', 'X-Kept: 2', '-H', 'Proxy-Connection: keep-alive', '-H', 'TE: trailers',
    `http://127.0.0.1:${o.port}/post`,
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^> Proxy-Authorization: Basic /m, 'curl sent the field the origin must not see');
  assert.match(r.stdout, /got 100000$/);
  assert.match(r.stdout, /^x-origin: yes\r$/im);
  assert.doesNotMatch(r.stdout, /timeout=99/);
  assert.equal(seen['x-kept'], '2');
  for (const h of ['x-secret', 'proxy-connection', 'te', 'proxy-authorization']) assert.equal(seen[h], undefined, h);
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.status === 200);
  assert.ok(Number(line?.up) > 100_000);
});

test('a client that leaves before the origin answers: the request is logged, the origin connection closed', async (t) => {
  const { createServer } = await import('node:http');
  const { listenTracked } = await import('../helpers/servers.js');
  let originClosed!: () => void;
  const closedOrigin = new Promise<void>((resolve) => (originClosed = resolve));
  let originAsked!: () => void;
  const askedOrigin = new Promise<void>((resolve) => (originAsked = resolve));
  const origin = createServer((req) => {
    originAsked();
    req.socket.once('close', () => originClosed());
  }); // never answers
  const o = await listenTracked(origin);
  t.after(() => o.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  s.write(`GET http://127.0.0.1:${o.port}/slow HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\n\r\n`);
  await askedOrigin; // the request reached the origin, which is yet to answer
  s.destroy();
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.dest === `127.0.0.1:${o.port}`);
  assert.equal(line?.rep, 0);
  assert.equal(line?.status, undefined, 'no status: nothing was answered');
  await Promise.race([closedOrigin, new Promise((_, reject) => setTimeout(() => reject(new Error('origin connection left open')), 3_000))]);
  assert.equal(gw.gw.connections.list().length, 0);
});

test('shutdown closes idle keep-alive clients instead of waiting out the drain for them', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({ limits: { drain_timeout: '60s' } });
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(`GET ${web.url}/idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  const head = (await readBytes(s, 12)).toString();
  assert.equal(head, 'HTTP/1.1 200');
  await gw.accessLog((l) => l.status === 200);
  const closing = gw.gw.close(); // the drain_timeout of 60s, not 0
  const outcome = await Promise.race([closing.then(() => 'closed'), new Promise((r) => setTimeout(() => r('still draining'), 10_000))]);
  assert.equal(outcome, 'closed');
});
