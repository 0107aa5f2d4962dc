// Absolute-form requests against origins that answer what a real web server would not, and
// clients that pipeline: the gateway answers each request once, in order, with a status it
// can stand behind, sends the request on as the client wrote it, and never goes down.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { closedWithin, startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

interface ScriptedOrigin {
  port: number;
  /** What each connection sent, in the order they came. */
  received: string[];
  /** Connections that came before every earlier one had been answered. */
  early: number;
  close(): Promise<void>;
}

/**
 * Test instrument (scripted origin): records the raw bytes of each connection and, once
 * `complete` says a request is in, writes `answer` (undefined: stays silent).
 */
async function startScriptedOrigin(answer: string | undefined, complete = (got: string) => got.includes('\r\n\r\n')): Promise<ScriptedOrigin> {
  const origin: ScriptedOrigin = { port: 0, received: [], early: 0, close: async () => {} };
  let answeredCount = 0;
  const server = createServer((s) => {
    const at = origin.received.push('') - 1;
    if (answeredCount < at) origin.early++;
    s.on('error', () => {});
    let answered = false;
    s.on('data', (chunk: Buffer) => {
      origin.received[at] += chunk.toString('latin1');
      if (answered || answer === undefined || !complete(origin.received[at]!)) return;
      answered = true;
      answeredCount++;
      s.end(answer, 'latin1');
    });
  });
  const { port, close } = await listenTracked(server);
  origin.port = port;
  origin.close = close;
  return origin;
}

interface HeldOrigin {
  port: number;
  /** What each connection sent, in the order they came. */
  received: string[];
  /** Resolves once the first request head is in (and `first` is written). */
  requested: Promise<void>;
  /** Writes `rest` and ends each connection. */
  release(): void;
  close(): Promise<void>;
}

/**
 * Test instrument (held origin): once a request head is in, writes `first` and holds the
 * connection open until release().
 */
async function startHeldOrigin(first: string, rest = ''): Promise<HeldOrigin> {
  let requested = (): void => {};
  let release = (): void => {};
  const released = new Promise<void>((resolve) => (release = resolve));
  const origin: HeldOrigin = {
    port: 0,
    received: [],
    requested: new Promise<void>((resolve) => (requested = resolve)),
    release: () => release(),
    close: async () => {},
  };
  const server = createServer((s) => {
    const at = origin.received.push('') - 1;
    s.on('error', () => {});
    let answered = false;
    s.on('data', (chunk: Buffer) => {
      origin.received[at] += chunk.toString('latin1');
      if (answered || !origin.received[at]!.includes('\r\n\r\n')) return;
      answered = true;
      s.write(first, 'latin1');
      requested();
      void released.then(() => s.end(rest, 'latin1'));
    });
  });
  const { port, close } = await listenTracked(server);
  origin.port = port;
  origin.close = close;
  return origin;
}

/** A scripted origin answering `answer` and a gateway started from `config`, both closed after the test. */
async function originBehindGateway(
  t: TestContext,
  answer: string | undefined,
  config: Record<string, unknown> = {},
  complete?: (got: string) => boolean,
): Promise<{ origin: ScriptedOrigin; gw: TestGateway }> {
  const origin = await startScriptedOrigin(answer, complete);
  t.after(() => origin.close());
  const gw = await startGateway(config);
  // Bounded: a connection the gateway never finishes must fail its test, not hang the file.
  t.after(() => gw.close(), { timeout: 10_000 });
  return { origin, gw };
}

/** A raw client of the gateway, destroyed after the test; `received()` is what came back so far. */
async function rawClientOf(gw: TestGateway, t: TestContext): Promise<{ s: Socket; received(): string }> {
  const s: Socket = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return { s, received: () => Buffer.concat(chunks).toString('latin1') };
}

/** Waits for `pred` to hold, failing with `what` after `ms`: a socket that closes early must not leave the test waiting until its timeout. */
async function until(pred: () => boolean, what: string, ms = 5_000): Promise<void> {
  for (let waited = 0; !pred(); waited += 10) {
    assert.ok(waited < ms, what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Writes `raw` to the gateway and collects what comes back until it closes (or `ms` pass). */
async function exchange(gw: TestGateway, raw: string, t: TestContext, ms = 5_000): Promise<string> {
  const { s, received } = await rawClientOf(gw, t);
  s.write(raw, 'latin1');
  await closedWithin(s, ms);
  return received();
}

const get = (port: number, path = '/', extra = ''): string => `GET http://127.0.0.1:${port}${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}\r\n`;

/**
 * True once the gateway has no open connection (every request each one had queued has run
 * and written its access-log line by then); false if one is still open after `ms`.
 */
async function settled(gw: TestGateway, ms = 5_000): Promise<boolean> {
  for (let waited = 0; gw.gw.activeSessions > 0 && waited < ms; waited += 20) await new Promise((r) => setTimeout(r, 20));
  return gw.gw.activeSessions === 0;
}

/** The most bytes the two kernel socket buffers of a loopback connection hold (Linux). */
async function socketBufferBytes(): Promise<number> {
  const max = async (name: string): Promise<number> => Number((await readFile(`/proc/sys/net/ipv4/${name}`, 'utf8')).trim().split(/\s+/)[2]);
  return (await max('tcp_wmem')) + (await max('tcp_rmem'));
}

/** Access-log lines of requests to 127.0.0.1:`port`. */
const linesTo = (gw: TestGateway, port: number): Array<Record<string, unknown>> =>
  gw.logs.filter((l) => l['msg'] === 'session end' && l['dest'] === `127.0.0.1:${port}`);

/** The gateway still serves: a plain request through it gets the web server's 200. */
async function stillServes(gw: TestGateway, t: TestContext): Promise<void> {
  const web = await startHttpServer();
  t.after(() => web.close());
  const answer = await exchange(gw, `${get(web.port, '/alive')}`.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 200 /, 'the gateway still serves');
}

for (const [what, statusLine] of [
  ['status 000', 'HTTP/1.1 000 X'],
  ['status 099', 'HTTP/1.1 099 Low'],
] as const) {
  test(`an origin answering ${what} gets the client a 502, and the gateway stays up`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, `${statusLine}\r\nContent-Length: 0\r\n\r\n`);
    const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
    assert.match(answer, /^HTTP\/1\.1 502 /);
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
    assert.equal(line?.['status'], 502);
    assert.equal(line?.['rep'], 0x01, 'a failure in the access log and the metrics, not a success');
    assert.match(String(line?.['error']), /status/);
    await stillServes(gw, t);
  });
}

test("an origin's reason phrase with a control character is replaced by the status's own", async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 O\x01K\r\nContent-Length: 2\r\n\r\nhi');
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(answer, /\r\n\r\nhi$/);
  await stillServes(gw, t);
});

test('an origin switching protocols unasked (101) gets the client a 502, not a wait', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n');
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 502 /);
});

test('an origin answering 101 without an Upgrade field (nothing to switch to) gets the client a 502, not a 101 as its final answer', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 101 Switching Protocols\r\n\r\n');
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 502 [^]*\r\n\r\nbad gateway: origin answered 101 without an Upgrade to switch to\n$/, answer);
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
  await stillServes(gw, t);
});

test('an origin silent past idle_timeout is a 504 that says the origin did not answer, not that the connect timed out', async (t) => {
  const { origin, gw } = await originBehindGateway(t, undefined, { limits: { idle_timeout: '300ms' } });
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 504 /);
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4);
  assert.match(body, /origin did not answer/);
  assert.doesNotMatch(body, /connect/);
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.deepEqual([line?.['status'], line?.['rep']], [504, 0x06]);
});

test('an origin that sends its head and then goes silent past idle_timeout is a 504, as one silent before its head', async (t) => {
  const origin = await startHeldOrigin('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n');
  t.after(() => origin.close());
  const gw = await startGateway({ limits: { idle_timeout: '300ms' } });
  t.after(() => gw.close());
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 504 /);
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.deepEqual([line?.['status'], line?.['rep'], line?.['error']], [504, 0x06, 'origin idle timeout']);
});

test('a request on a kept-alive connection waits for its origin as long as the config live now says, not the one the connection began under', async (t) => {
  const { origin, gw } = await originBehindGateway(t, undefined, { limits: { idle_timeout: '60s' } });
  const web = await startHttpServer();
  t.after(() => web.close());
  const { s, received } = await rawClientOf(gw, t);
  s.write(get(web.port, '/first'), 'latin1');
  for (let waited = 0; !received().includes('hello /first') && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.match(received(), /^HTTP\/1\.1 200 /, 'the first request is answered, the connection kept');
  await gw.gw.reload(parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], limits: { idle_timeout: '300ms' } }), '/tmp/socksgate-test.yaml', {}));
  s.write(get(origin.port, '/silent', 'Connection: close\r\n'), 'latin1');
  assert.ok(await closedWithin(s, 5_000), 'answered and closed within 5 s, not at the 60 s the connection began under');
  assert.match(received().slice(received().lastIndexOf('HTTP/1.1 ')), /^HTTP\/1\.1 504 /);
});

for (const [framing, head] of [
  ['Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'],
  ['chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'],
] as const) {
  test(`an origin that closes after its head (${framing}), before any body, is a 502 that says so, as one that resets`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, head);
    const answer = await exchange(gw, get(origin.port), t);
    assert.match(answer, /^HTTP\/1\.1 502 /, 'an answer, not an empty reply');
    assert.match(answer, /\r\n\r\nbad gateway: origin closed before the end of its response\n$/, 'not "upstream failure" on a direct route');
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
    assert.deepEqual([line?.['status'], line?.['rep'], line?.['error']], [502, 0x01, 'origin closed before the end of its response']);
  });
}

test('an origin that closes in the middle of its body: the client sees the body fall short, and the access log says why', async (t) => {
  const origin = await startHeldOrigin('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
  t.after(() => origin.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const { s, received } = await rawClientOf(gw, t);
  s.write(get(origin.port), 'latin1');
  await until(() => received().endsWith('abc'), 'the first part of the body reached the client');
  origin.release();
  assert.ok(await closedWithin(s), 'the connection closes: the only way to say the body is short');
  assert.match(received(), /^HTTP\/1\.1 200 [^]*\r\n\r\nabc$/);
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.deepEqual([line?.['status'], line?.['error']], [200, 'origin closed before the end of its response']);
});

test('an origin that closes in the middle of a body without a length: an HTTP/1.0 client, whose body ends at the close, gets a reset, not a complete-looking end', async (t) => {
  const origin = await startHeldOrigin('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n');
  t.after(() => origin.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const { s, received } = await rawClientOf(gw, t);
  s.write(`GET http://127.0.0.1:${origin.port}/ HTTP/1.0\r\n\r\n`, 'latin1');
  await until(() => received().endsWith('abc'), 'the first part of the body reached the client');
  assert.doesNotMatch(received(), /content-length|transfer-encoding/i, 'the body is delimited by the close');
  const closing = new Promise<boolean>((resolve) => s.once('close', resolve));
  origin.release();
  const hadError = await closing;
  assert.equal(hadError, true, 'a FIN would end the body as if it were whole (RFC 9112 §8)');
});

test('an origin response head past node\'s 16 KiB default (a long Content-Security-Policy) is passed on, not a 502', async (t) => {
  const policy = `default-src 'self'; ${"script-src 'sha256-0000000000000000000000000000000000000000000='; ".repeat(600)}object-src 'none'`;
  assert.ok(policy.length > 32 * 1024);
  const { origin, gw } = await originBehindGateway(t, `HTTP/1.1 200 OK\r\nContent-Security-Policy: ${policy}\r\nContent-Length: 2\r\n\r\nok`);
  const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.ok(answer.includes(`\r\nContent-Security-Policy: ${policy}\r\n`), 'the field whole');
  assert.ok(answer.endsWith('\r\n\r\nok'));
});

test('the request target goes on as the client wrote it, and Host is the target’s authority (RFC 9112 §3.2.2)', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n');
  const path = "/a/%2e%2e/b/../c?q='x'&r=%7B";
  const answer = await exchange(gw, `GET http://127.0.0.1:${origin.port}${path} HTTP/1.1\r\nHost: internal.example\r\nConnection: close\r\n\r\n`, t);
  assert.match(answer, /^HTTP\/1\.1 204 /);
  const [head] = origin.received;
  assert.ok(head?.startsWith(`GET ${path} HTTP/1.1\r\n`), `the path and query unchanged: ${JSON.stringify(head?.split('\r\n')[0])}`);
  const hosts = head!.split('\r\n').filter((l) => /^host:/i.test(l));
  assert.deepEqual(hosts, [`Host: 127.0.0.1:${origin.port}`]);
});

test('OPTIONS for a server as a whole (an absolute URI with no path) reaches the origin as "OPTIONS *"; with a path it keeps it (RFC 9112 §3.2.4)', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nAllow: GET\r\nContent-Length: 0\r\n\r\n');
  for (const path of ['', '/', '?q']) {
    const raw = `OPTIONS http://127.0.0.1:${origin.port}${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`;
    assert.match(await exchange(gw, raw, t), /^HTTP\/1\.1 200 /);
  }
  assert.deepEqual(origin.received.map((r) => r.slice(0, r.indexOf('\r\n'))), ['OPTIONS * HTTP/1.1', 'OPTIONS / HTTP/1.1', 'OPTIONS /?q HTTP/1.1']);
});

test('a POST or PUT without a body reaches the origin without one (Content-Length: 0), not with an empty chunked body', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n');
  for (const [method, version] of [['POST', '1.1'], ['PUT', '1.0'], ['PROPFIND', '1.1']] as const) {
    const raw = `${method} http://127.0.0.1:${origin.port}/x HTTP/${version}\r\nHost: x\r\nConnection: close\r\n\r\n`;
    assert.match(await exchange(gw, raw, t), /^HTTP\/1\.1 204 /);
  }
  for (const sent of origin.received) {
    assert.doesNotMatch(sent, /transfer-encoding/i, sent);
    assert.match(sent, /\r\nContent-Length: 0\r\n/, sent);
    assert.ok(sent.endsWith('\r\n\r\n'), `nothing after the head: ${JSON.stringify(sent)}`);
  }
  assert.equal(origin.received.length, 3);
});

test('a chunked body on a DELETE reaches the origin chunked, not as bytes behind a bodiless request', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n', {}, (got) => got.includes('\r\n0\r\n\r\n'));
  const raw = `DELETE http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
  const answer = await exchange(gw, raw, t);
  assert.match(answer, /^HTTP\/1\.1 204 /);
  const [sent] = origin.received;
  const [head, body] = [sent!.slice(0, sent!.indexOf('\r\n\r\n')), sent!.slice(sent!.indexOf('\r\n\r\n') + 4)];
  assert.match(head, /\r\nTransfer-Encoding: chunked(\r\n|$)/i);
  assert.equal(body, '5\r\nhello\r\n0\r\n\r\n');
});

test('a Transfer-Encoding that is not chunked alone is refused, nothing dialed, and the connection closes: no coding or chunked not last 400, another coding 501 (RFC 9112 §6.1, §6.3)', async (t) => {
  const inner = 'GET /admin HTTP/1.1\r\nHost: admin.internal\r\n\r\n';
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n');
  const cases = [
    // node reads this body by its Content-Length; an origin that sees Transfer-Encoding too may not.
    { te: '', body: `Content-Length: ${inner.length}\r\n\r\n${inner}`, status: 400 },
    { te: 'gzip, chunked', body: `\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`, status: 501 },
    { te: 'identity, chunked', body: `\r\n${inner.length.toString(16)}\r\n${inner}\r\n0\r\n\r\n`, status: 501 },
  ];
  for (const { te, body, status } of cases) {
    const raw = `POST http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ${te}\r\n${body}${get(origin.port, '/next')}`;
    const answer = await exchange(gw, raw, t);
    assert.match(answer, new RegExp(`^HTTP/1\\.1 ${status} `), `Transfer-Encoding: ${te}: ${answer}`);
    assert.match(answer, /Transfer-Encoding/, 'the answer says why');
    assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1, `one answer, then the close: ${answer}`);
  }
  assert.deepEqual(origin.received, [], 'nothing reached the origin');
  const lines = linesTo(gw, origin.port);
  assert.deepEqual(lines.map((l) => l['status']), [400, 501, 501]);
});

test('a chunked body reaches the origin as "Transfer-Encoding: chunked", however the client spelled it', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n', {}, (got) => got.includes('\r\n0\r\n\r\n'));
  for (const te of ['Chunked', ', chunked', ' chunked ']) {
    const raw = `POST http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:${te}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n`;
    assert.match(await exchange(gw, raw, t), /^HTTP\/1\.1 204 /);
  }
  for (const sent of origin.received) {
    const head = sent.slice(0, sent.indexOf('\r\n\r\n'));
    assert.deepEqual(head.split('\r\n').filter((l) => /^transfer-encoding:/i.test(l)), ['Transfer-Encoding: chunked'], head);
  }
  assert.equal(origin.received.length, 3);
});

test('a Content-Length the Connection field names still frames the body, which never reaches the origin as a request of its own', async (t) => {
  const inner = 'GET /admin HTTP/1.1\r\nHost: admin.internal\r\n\r\n';
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 204 No Content\r\n\r\n', {}, (got) => got.endsWith(inner));
  const raw = `GET http://127.0.0.1:${origin.port}/x HTTP/1.1\r\nHost: x\r\nConnection: close, content-length\r\nContent-Length: ${inner.length}\r\n\r\n${inner}`;
  const answer = await exchange(gw, raw, t);
  assert.match(answer, /^HTTP\/1\.1 204 /);
  const [sent] = origin.received;
  const head = sent!.slice(0, sent!.indexOf('\r\n\r\n'));
  assert.match(head, new RegExp(`\r\nContent-Length: ${inner.length}(\r\n|$)`, 'i'), 'the body goes as the first request\'s content');
});

test('pipelined requests are served one at a time, in order, each answered and logged', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const N = 10;
  const raw = Array.from({ length: N }, (_, i) => get(origin.port, `/r${i}`, i === N - 1 ? 'Connection: close\r\n' : '')).join('');
  const answer = await exchange(gw, raw, t, 10_000);
  assert.equal(answer.match(/HTTP\/1\.1 200 OK/g)?.length, N, 'every request answered');
  assert.equal(origin.received.length, N);
  assert.deepEqual(
    origin.received.map((r) => r.split(' ')[1]),
    Array.from({ length: N }, (_, i) => `/r${i}`),
    'dialed in order',
  );
  assert.equal(origin.early, 0, 'each request dialed once the one before it was answered');
  assert.ok(await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}` && gw.logs.filter((x) => x['status'] === 200).length === N), 'one line each');
});

test('a client pipelining far more requests than are served in turn gets the answers to those waiting, the last with the close; nothing is dialed for the rest', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const N = 300;
  const raw = Array.from({ length: N }, (_, i) => get(origin.port, `/p${i}`)).join('');
  const answer = await exchange(gw, raw, t, 15_000);
  const heads = answer.split('\r\n\r\nok').filter((h) => h.length > 0);
  // A client that retries what was not answered (RFC 9112 §9.3.2) gets somewhere each time.
  assert.ok(heads.length >= 16 && heads.length < N, `answered ${heads.length} of ${N}`);
  assert.ok(heads.every((h) => h.startsWith('HTTP/1.1 200 OK')), answer.slice(0, 300));
  assert.deepEqual(
    origin.received.map((r) => r.split(' ')[1]),
    Array.from({ length: heads.length }, (_, i) => `/p${i}`),
    'the ones answered, dialed in order; none of the rest',
  );
  assert.match(heads.at(-1)!, /\r\nConnection: close(\r\n|$)/i, 'the last answer says the connection closes');
  assert.ok(heads.slice(0, -1).every((h) => !/\r\nConnection: close/i.test(h)), 'only the last');
  assert.equal(gw.logs.filter((l) => l['msg'] === 'too many pipelined requests; the connection closes after those waiting').length, 1, 'said once');
  await stillServes(gw, t);
});

test('the requests a client pipelined past the bound are in the access log: one line for the connection says how many were not served, and why', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const N = 40; // about 2.5 KB: one write, one chunk, every head parsed
  const raw = Array.from({ length: N }, (_, i) => get(origin.port, `/p${i}`)).join('');
  const answer = await exchange(gw, raw, t, 15_000);
  const answered = answer.split('\r\n\r\nok').filter((h) => h.length > 0).length;
  assert.ok(answered < N, `answered ${answered} of ${N}`);
  assert.ok(await settled(gw), 'the connection ended');
  const lines = gw.logs.filter((l) => l['msg'] === 'session end');
  assert.equal(lines.filter((l) => l['status'] === 200).length, answered, 'one line per answered request');
  const unserved = lines.filter((l) => l['status'] === undefined);
  assert.equal(unserved.length, 1, `one line for the rest, however many: ${JSON.stringify(unserved)}`);
  const [line] = unserved;
  assert.equal(line!['sid'], lines[0]!['sid'], 'the same connection');
  assert.equal(line!['protocol'], 'http');
  assert.match(String(line!['error']), new RegExp(`^${N - answered} pipelined requests not served: more than 16 were waiting`), String(line!['error']));
  assert.equal(lines.at(-1), line, 'written after the answered ones');
});

test('a client that goes on pipelining past the bound has no more of it read: the requests it sends after are neither parsed nor held', async (t) => {
  const origin = await startHeldOrigin('', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  t.after(() => origin.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const { s } = await rawClientOf(gw, t);
  s.write(get(origin.port, '/held'));
  await origin.requested; // the first one holds the queue: those behind it wait
  // 4 MiB of heads, about 48 000 requests: node's parser, left to read, held each with its
  // response until the connection ended (about 80 MB here; a client going on sent GBs).
  const one = get(origin.port, '/more');
  const flood = Buffer.from(one.repeat(Math.ceil((4 * 1024 * 1024) / one.length)), 'latin1');
  const sent = Math.ceil((4 * 1024 * 1024) / one.length);
  // Written whole, or as much as the kernel takes from a reader that stopped (bounded wait).
  await new Promise<void>((resolve) => {
    s.write(flood, () => resolve());
    s.once('close', () => resolve());
    setTimeout(resolve, 3_000);
  });
  origin.release();
  assert.ok(await settled(gw, 8_000), 'the connection ended after the answers to those waiting');
  const line = gw.logs.find((l) => /pipelined requests? not served/.test(String(l['error'])));
  const unserved = Number(/^(\d+) /.exec(String(line?.['error']))?.[1]);
  // What was parsed past the bound is what node had read by then: one read of 64 KiB at most.
  assert.ok(unserved > 0 && unserved < 2_000, `${unserved} of ${sent} parsed and dropped`);
  await stillServes(gw, t);
});

test('with auth, a failing request pipelined before a good one gets its own answer, then the good one its own', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const refused = await startScriptedOrigin(undefined);
  await refused.close(); // nothing listens on its port now: connection refused
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close());
  const auth = `Proxy-Authorization: Basic ${Buffer.from('alice:alice-pw').toString('base64')}\r\n`;
  const raw = get(refused.port, '/down', auth) + get(web.port, '/up', `${auth}Connection: close\r\n`);
  const answer = await exchange(gw, raw, t, 10_000);
  const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
  assert.deepEqual(statuses, [502, 200]);
  const down = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${refused.port}`);
  const up = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${web.port}`);
  assert.equal(down?.['status'], 502);
  assert.equal(down?.['user'], 'alice');
  assert.match(String(down?.['error']), /./);
  assert.equal(up?.['status'], 200);
  assert.equal(up?.['error'], undefined);
});

test('Expect: 100-continue: the client is told to send its body once the origin is dialed, and the body arrives', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', {}, (got) => got.endsWith('hello'));
  const { s, received } = await rawClientOf(gw, t);
  s.write(`POST http://127.0.0.1:${origin.port}/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`);
  for (let waited = 0; !received().includes('\r\n\r\n') && waited < 5_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  assert.match(received(), /^HTTP\/1\.1 100 Continue\r\n\r\n$/);
  assert.equal(origin.received.length, 1, 'the origin was dialed before the 100');
  s.write('hello');
  await closedWithin(s, 5_000);
  assert.match(received(), /\r\n\r\nHTTP\/1\.1 201 Created\r\n/);
  assert.ok(origin.received[0]!.endsWith('\r\n\r\nhello'));
});

test('a request whose body has not come yet goes to the origin head first: the origin can answer before the body (a 413)', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope');
  const { s, received } = await rawClientOf(gw, t);
  // The head only: the client's body is slow to come, and never does here.
  s.write(`POST http://127.0.0.1:${origin.port}/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n`, 'latin1');
  for (let i = 0; i < 100 && !received().includes('nope'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(origin.received.length, 1, 'the origin was dialed');
  assert.match(origin.received[0]!, /^POST \/upload HTTP\/1\.1\r\n[\s\S]*\r\n\r\n$/, 'the head reached the origin without its body');
  assert.match(received(), /^HTTP\/1\.1 413 [\s\S]*nope$/);
});

test('Expect: 100-continue from an HTTP/1.0 client is ignored: its answer is the final response, with no 1xx before it', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n', {}, (got) => got.endsWith('hello'));
  const { s, received } = await rawClientOf(gw, t);
  s.write(`POST http://127.0.0.1:${origin.port}/up HTTP/1.0\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n`);
  await until(() => origin.received.length > 0, 'the head reached the origin');
  s.write('hello');
  await closedWithin(s, 5_000);
  assert.match(received(), /^HTTP\/1\.1 201 Created\r\n/, 'an HTTP/1.0 client takes any status line for its response (RFC 9110 §15.2)');
});

test('an expectation other than 100-continue is a 417 with its access-log line, nothing is dialed, and the connection goes on', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok');
  const answer = await exchange(gw, `POST http://127.0.0.1:${origin.port}/up HTTP/1.1\r\nHost: x\r\nExpect: x-wait\r\nContent-Length: 5\r\n\r\nhello${get(origin.port, '/next', 'Connection: close\r\n')}`, t);
  assert.match(answer, /^HTTP\/1\.1 417 [^]*\nHTTP\/1\.1 200 OK\r\n[^]*ok$/, 'the 417, then the next request served');
  assert.equal(origin.received.length, 1, 'only the next request reached the origin');
  assert.ok(origin.received[0]!.startsWith('GET /next '));
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}` && l['status'] === 417);
  assert.equal(line?.['rep'], 0x01);
  assert.match(String(line?.['error']), /expectation/);
});

test('Expect: 100-continue on a refused request: the refusal comes without a 100 before it, and the connection closes', async (t) => {
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close());
  const answer = await exchange(gw, 'POST http://127.0.0.1:9/up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n', t);
  assert.match(answer, /^HTTP\/1\.1 407 /, 'no 100 Continue first');
  assert.match(answer, /\r\nConnection: close\r\n/i);
});

test('HTTP/1.0 keep-alive, a response without a length: it ends the connection, and nothing pipelined behind it is forwarded', async (t) => {
  // No Content-Length: an HTTP/1.0 client cannot be sent chunked, so the response ends at the close.
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n');
  const request = (path: string): string => `GET http://127.0.0.1:${origin.port}${path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`;
  const answer = await exchange(gw, request('/first') + request('/behind'), t);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/);
  assert.ok(await settled(gw), 'every request on the connection ran to its end');
  assert.equal(origin.received.length, 1, 'only the first request was forwarded');
});

test('HTTP/1.0 keep-alive, a response with its length: still one request per connection, closed after its answer (RFC 9112 §9.3, C.2.2)', async (t) => {
  // A proxy keeps no persistent connection with an HTTP/1.0 client, whatever its Keep-Alive says.
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const request = (path: string): string => `GET http://127.0.0.1:${origin.port}${path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n`;
  const answer = await exchange(gw, request('/first') + request('/behind'), t);
  assert.equal([...answer.matchAll(/HTTP\/1\.1 \d{3} /g)].length, 1, answer);
  assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(answer, /\r\nConnection: close\r\n/i);
  assert.ok(await settled(gw), 'every request on the connection ran to its end');
  assert.equal(origin.received.length, 1, 'only the first request was forwarded');
});

test('a request pipelined behind one that asked to close is not served, answered or logged as a bad request', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const answer = await exchange(gw, get(origin.port, '/last', 'Connection: close\r\n') + get(origin.port, '/behind'), t);
  assert.equal([...answer.matchAll(/HTTP\/1\.1 \d{3} /g)].length, 1, answer);
  assert.match(answer, /^HTTP\/1\.1 200 /);
  assert.ok(await settled(gw));
  assert.equal(origin.received.length, 1);
  assert.deepEqual(linesTo(gw, origin.port).map((l) => l['status']), [200]);
  assert.equal(gw.logs.filter((l) => l.msg === 'session end' && l['status'] === 400).length, 0, 'no 400 the client never got');
});

test('a request pipelined behind a refused Expect: 100-continue request is not forwarded, and the connection ends', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const refused = `GET http://127.0.0.1:9/up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n`;
  const answer = await exchange(gw, refused + get(origin.port, '/behind'), t);
  assert.match(answer, /^HTTP\/1\.1 502 /);
  assert.match(answer, /\r\nConnection: close\r\n/i);
  assert.ok(await settled(gw), 'every request on the connection ran to its end');
  assert.equal(origin.received.length, 0, 'nothing behind the closing answer was dialed');
});

for (const [what, answer] of [
  ['an invalid chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nok\r\n0\r\n\r\n'],
  ['a chunk size past any length', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFFFFFF\r\nok'],
] as const) {
  test(`an origin whose head parses but whose body does not (${what}): a 502 in place of its head, not an empty reply`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, answer);
    const got = await exchange(gw, get(origin.port), t);
    assert.match(got, /^HTTP\/1\.1 502 /);
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
    assert.deepEqual([line?.['status'], line?.['rep']], [502, 0x01]);
    await stillServes(gw, t);
  });
}

for (const [what, answer, status] of [
  ['bytes past its Content-Length', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA', 200],
  ['a body on a 204', 'HTTP/1.1 204 No Content\r\n\r\nhello', 204],
] as const) {
  test(`an origin sending ${what}: the complete response reaches the client, then the connection closes, and nothing pipelined behind it is forwarded`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, answer);
    const behind = await startScriptedOrigin('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    t.after(() => behind.close());
    const { s, received } = await rawClientOf(gw, t);
    s.write(get(origin.port) + get(behind.port, '/behind'), 'latin1');
    assert.ok(await closedWithin(s, 5_000), 'the gateway closed the connection');
    assert.ok(await settled(gw), 'every request on the connection ran to its end');
    const got = received();
    assert.match(got, new RegExp(`^HTTP/1\\.1 ${status} `));
    if (status === 200) assert.match(got, /\r\n\r\nhello$/);
    assert.doesNotMatch(got, /EXTRA/);
    assert.equal(got.match(/HTTP\/1\.1 /g)?.length, 1, 'one response');
    assert.equal(behind.received.length, 0, 'the request behind it reached no origin');
    assert.deepEqual(linesTo(gw, behind.port), [], 'nor was it routed');
  });
}

test('an origin answering before the request body is complete: the rest of the body is dropped, and the next request on the connection is served', async (t) => {
  // Answers as soon as the head is in, and closes: a 413 on an upload.
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope');
  const web = await startHttpServer();
  t.after(() => web.close());
  const { s, received } = await rawClientOf(gw, t);
  const size = 256 * 1024;
  s.write(`POST http://127.0.0.1:${origin.port}/upload HTTP/1.1\r\nHost: h\r\nContent-Length: ${size}\r\n\r\n${'x'.repeat(1000)}`, 'latin1');
  for (let i = 0; i < 100 && !received().includes('nope'); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(received(), /^HTTP\/1\.1 413 [\s\S]*nope$/);
  s.write(`${'x'.repeat(size - 1000)}${get(web.port, '/alive')}`, 'latin1');
  for (let i = 0; i < 100 && !/HTTP\/1\.1 200 /.test(received()); i++) await new Promise((r) => setTimeout(r, 50));
  assert.match(received(), /nopeHTTP\/1\.1 200 /, 'the request after the dropped body is answered on the same connection');
});

test('a head with more fields than allowed is refused with 431, not forwarded with the rest cut off', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
  const fields = Array.from({ length: 120 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join('');
  const got = await exchange(gw, get(origin.port, '/', `${fields}Authorization: Basic dTpw\r\n`), t);
  assert.match(got, /^HTTP\/1\.1 431 /);
  assert.equal(origin.received.length, 0, 'nothing reached the origin');
  await stillServes(gw, t);
});

test('a 431 closes the connection: the request before it is answered, nothing pipelined behind it is forwarded, and the access log says it was not served', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const behind = await startScriptedOrigin('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  t.after(() => behind.close());
  const fields = Array.from({ length: 120 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join('');
  const raw = get(origin.port, '/before') + get(origin.port, '/big', fields) + get(behind.port, '/behind');
  const { s, received } = await rawClientOf(gw, t);
  s.write(raw, 'latin1');
  assert.ok(await closedWithin(s, 5_000), 'the gateway closed the connection');
  assert.ok(await settled(gw), 'every request on the connection ran to its end');
  const got = received();
  assert.deepEqual([...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])), [200, 431]);
  assert.match(got.slice(got.indexOf('HTTP/1.1 431 ')), /\r\nConnection: close\r\n/i);
  assert.deepEqual(origin.received.map((r) => r.split(' ')[1]), ['/before']);
  assert.equal(behind.received.length, 0, 'nothing behind the 431 reached an origin');
  assert.deepEqual(linesTo(gw, behind.port), [], 'nor was it routed');
  const unserved = gw.logs.filter((l) => l['msg'] === 'session end' && l['status'] === undefined);
  assert.deepEqual(unserved.map((l) => l['error']), ['1 pipelined request not served: an answer ahead closed the connection'], 'but the access log says it was dropped');
});

test('a 431 as the first request, with one pipelined behind it: the 431 has its access-log line, then the one not served', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const fields = Array.from({ length: 120 }, (_, i) => `X-Field-${i}: ${i}\r\n`).join('');
  const got = await exchange(gw, get(origin.port, '/big', fields) + get(origin.port, '/behind'), t);
  assert.match(got, /^HTTP\/1\.1 431 /);
  assert.ok(await settled(gw));
  const lines = gw.logs.filter((l) => l['msg'] === 'session end');
  assert.deepEqual(lines.map((l) => [l['status'], l['error']]), [
    [431, 'bad request (HPE_HEADER_OVERFLOW)'],
    [undefined, '1 pipelined request not served: an answer ahead closed the connection'],
  ]);
});

test('a malformed request pipelined behind a good one: the good one is answered first, then the connection closes', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  const got = await exchange(gw, `${get(web.port, '/alive')}GARBAGE\x01\r\n\r\n`, t);
  assert.match(got, /^HTTP\/1\.1 200 /);
});

test('bytes after a malformed request are not answered again: the slow good one before it gets its whole answer, then one 400, then the close', async (t) => {
  const origin = await startHeldOrigin('', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
  t.after(() => origin.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const { s, received } = await rawClientOf(gw, t);
  s.write(get(origin.port, '/slow'));
  await origin.requested;
  // The bad head, then more bytes than the kernel's buffers hold: once it has taken them all,
  // the gateway has read 2 MiB of them at least, 32 reads (node reads 64 KiB at a time, and
  // its parser reports each read after an error again).
  const garbage = Buffer.alloc((await socketBufferBytes()) + 2 * 1024 * 1024, 'x');
  garbage.write('GARBAGE\x01\r\n\r\n', 'latin1');
  await new Promise<void>((resolve) => {
    s.write(garbage, () => resolve());
    s.once('close', () => resolve());
  });
  origin.release();
  assert.ok(await closedWithin(s, 5_000), 'closed after the 400');
  const got = received();
  assert.match(got, /^HTTP\/1\.1 200 OK\r\n[\s\S]*?\r\n\r\nhelloHTTP\/1\.1 400 /);
  assert.equal(got.match(/HTTP\/1\.1 /g)?.length, 2, 'one 400');
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.equal(line?.['status'], 200);
  assert.equal(line?.['error'], undefined);
});

const chunkedPost = (port: number): string => `POST http://127.0.0.1:${port}/upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n`;

test('a request body that stops parsing while it is forwarded (a bad chunk size) is a 400 at once, and the connection closes, with one access-log line', async (t) => {
  // Silent until released: the origin waits for the rest of the body, as any would.
  const origin = await startHeldOrigin('');
  t.after(() => origin.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const { s, received } = await rawClientOf(gw, t);
  s.write(chunkedPost(origin.port), 'latin1');
  await origin.requested;
  s.write('zz\r\nbad\r\n0\r\n\r\n', 'latin1');
  assert.ok(await closedWithin(s, 5_000), 'closed without waiting for idle_timeout');
  const got = received();
  assert.match(got, /^HTTP\/1\.1 400 /);
  assert.equal(got.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer');
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.equal(line?.['status'], 400);
  assert.match(String(line?.['error']), /HPE_INVALID_CHUNK_SIZE/);
  assert.ok(await settled(gw));
  assert.deepEqual(gw.logs.filter((l) => l['msg'] === 'session end').map((l) => l['status']), [400], 'one line: its body is no request of its own');
});

test('a request whose body does not parse, pipelined behind one still answered, is a 400 in its turn, and nothing is dialed for it', async (t) => {
  const first = await startHeldOrigin('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n', 'hello');
  t.after(() => first.close());
  const second = await startScriptedOrigin('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok', (got) => got.includes('0\r\n\r\n'));
  t.after(() => second.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const { s, received } = await rawClientOf(gw, t);
  s.write(get(first.port, '/slow') + chunkedPost(second.port) + 'zz\r\nbad\r\n0\r\n\r\n', 'latin1');
  await first.requested;
  first.release();
  assert.ok(await closedWithin(s, 5_000), 'closed without waiting for idle_timeout');
  const got = received();
  assert.deepEqual([...got.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])), [200, 400]);
  assert.equal(second.received.length, 0, 'nothing reached the second origin');
  assert.ok(await settled(gw));
  assert.deepEqual(gw.logs.filter((l) => l['msg'] === 'session end').map((l) => l['status']), [200, 400], 'a line each, and none for a request not served');
});

test('a client that leaves while the origin has not answered: the access log says the client closed, not a request served', async (t) => {
  const { origin, gw } = await originBehindGateway(t, undefined);
  const { s } = await rawClientOf(gw, t);
  s.write(get(origin.port), 'latin1');
  for (let waited = 0; origin.received.length === 0 && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  s.destroy();
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
  assert.ok(line, 'an access-log line');
  assert.equal(line['status'], undefined, 'no response went out');
  assert.equal(line['error'], 'client closed the connection');
});

test('a client that closes in the middle of its upload: one access-log line saying the client closed, no 400 for the rest of its body', async (t) => {
  // One origin that waits for the whole body (the upload is being forwarded when the client
  // goes), one that answers at once, before the body (a 413: the rest is read and dropped).
  const waiting = await startHeldOrigin('');
  t.after(() => waiting.close());
  const early = await startScriptedOrigin('HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nnope');
  t.after(() => early.close());
  const gw = await startGateway();
  t.after(() => gw.close(), { timeout: 10_000 });
  const upload = (port: number): string => `POST http://127.0.0.1:${port}/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n${'x'.repeat(1000)}`;

  const a = await rawClientOf(gw, t);
  a.s.write(upload(waiting.port), 'latin1');
  await waiting.requested;
  a.s.end(); // gives up: a FIN with 999 000 bytes of the body never sent
  assert.ok(await closedWithin(a.s, 5_000), 'closed without waiting for idle_timeout');
  assert.equal(a.received(), '', 'nothing answered to a client that left');

  const b = await rawClientOf(gw, t);
  b.s.write(upload(early.port), 'latin1');
  for (let i = 0; i < 100 && !b.received().includes('nope'); i++) await new Promise((r) => setTimeout(r, 50));
  b.s.end();
  assert.ok(await closedWithin(b.s, 5_000), 'closed without waiting for idle_timeout');
  assert.equal(b.received().match(/HTTP\/1\.1 /g)?.length, 1, `one answer to one request: ${b.received()}`);
  assert.match(b.received(), /^HTTP\/1\.1 413 [\s\S]*nope$/);

  assert.ok(await settled(gw), 'both connections ran to their end');
  const cut = linesTo(gw, waiting.port);
  assert.equal(cut.length, 1);
  assert.equal(cut[0]!['status'], undefined, 'no response went out');
  assert.equal(cut[0]!['error'], 'client closed the connection');
  const answered = linesTo(gw, early.port);
  assert.equal(answered.length, 1);
  assert.equal(answered[0]!['status'], 413);
  const ended = gw.logs.filter((l) => l['msg'] === 'session end');
  assert.equal(ended.length, 2, `one line per request, none for the rest of a body: ${JSON.stringify(ended)}`);
  assert.ok(!ended.some((l) => l['status'] === 400));
});

test('Max-Forwards (RFC 9110 §7.6.2): TRACE and OPTIONS at 0 are answered by the gateway, not forwarded; above 0 they go on with one less; other methods keep it', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  const target = `http://127.0.0.1:${origin.port}`;
  const raw =
    `TRACE ${target}/t0 HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\nCookie: c=secret\r\nProxy-Authorization: Basic c2VjcmV0\r\nX-Seen: yes\r\n\r\n` +
    `OPTIONS ${target}/o0 HTTP/1.1\r\nHost: h\r\nMax-Forwards: 0\r\n\r\n` +
    `OPTIONS ${target}/o5 HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\n\r\n` +
    `GET ${target}/g5 HTTP/1.1\r\nHost: h\r\nMax-Forwards: 5\r\nConnection: close\r\n\r\n`;
  const answer = await exchange(gw, raw, t);
  const responses = answer.split(/(?=HTTP\/1\.1 \d{3} )/);
  assert.equal(responses.length, 4, answer);
  assert.match(responses[0]!, /^HTTP\/1\.1 200 [^]*\r\ncontent-type: message\/http\r\n/i);
  assert.match(responses[0]!, new RegExp(`\r\n\r\nTRACE ${target}/t0 HTTP/1\\.1\r\n[^]*Max-Forwards: 0\r\n[^]*X-Seen: yes\r\n`));
  assert.doesNotMatch(responses[0]!, /secret|c2VjcmV0/, 'no credentials or cookies echoed');
  assert.match(responses[1]!, /^HTTP\/1\.1 200 /);
  assert.deepEqual(origin.received.map((r) => r.split(' ').slice(0, 2).join(' ')), ['OPTIONS /o5', 'GET /g5'], 'the two at 0 never reached the origin');
  assert.match(origin.received[0]!, /\r\nMax-Forwards: 4\r\n/i);
  assert.match(origin.received[1]!, /\r\nMax-Forwards: 5\r\n/i);
  assert.ok(await settled(gw));
  assert.deepEqual(linesTo(gw, origin.port).map((l) => l['status']), [200, 200, 200, 200], 'one line each');
});

test('1xx from the origin (103 Early Hints, 102) reach an HTTP/1.1 client before the final response, hop-by-hop fields removed; an HTTP/1.0 client gets none (RFC 9110 §15.2)', async (t) => {
  const interim = 'HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n';
  const { origin, gw } = await originBehindGateway(t, `${interim}HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`);
  const eleven = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(eleven, /^HTTP\/1\.1 103 Early Hints\r\nLink: <\/a\.css>; rel=preload\r\n\r\nHTTP\/1\.1 102 Processing\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  const ten = await exchange(gw, `GET http://127.0.0.1:${origin.port}/ HTTP/1.0\r\n\r\n`, t);
  assert.match(ten, /^HTTP\/1\.1 200 OK\r\n[^]*ok$/);
  assert.ok(await settled(gw));
  assert.deepEqual(linesTo(gw, origin.port).map((l) => l['status']), [200, 200]);
});

test('a Content-Length an origin sends on a 204 or a 1xx is not passed on (RFC 9110 §8.6), and the next request on the connection gets its own answer', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 103 Early Hints\r\nContent-Length: 7\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 7\r\nX-A: 1\r\n\r\n');
  const { s, received } = await rawClientOf(gw, t);
  s.write(get(origin.port, '/one'));
  await until(() => /\r\n\r\n[^]*\r\n\r\n/.test(received()), 'the 103 and the 204');
  s.write(get(origin.port, '/two', 'Connection: close\r\n'));
  await closedWithin(s, 5_000);
  const answers = received().split('HTTP/1.1 ').slice(1);
  assert.deepEqual(answers.map((a) => a.slice(0, 3)), ['103', '204', '103', '204'], received());
  for (const a of answers) assert.doesNotMatch(a, /content-length/i, a);
});

for (const [what, answer] of [
  ['gzip, chunked', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
  ['gzip alone, to the close', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello'],
] as const) {
  test(`an origin response in a transfer coding besides chunked (${what}) is a 502, not its coded bytes passed on as the content`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, answer);
    const got = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
    assert.match(got, /^HTTP\/1\.1 502 /, got);
    assert.doesNotMatch(got, /hello/);
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
    assert.equal(line?.['status'], 502);
    assert.match(String(line?.['error']), /transfer coding/);
    await stillServes(gw, t);
  });
}

test('a response that has no content (to a HEAD, a 304) is passed on whatever transfer coding it names', async (t) => {
  const { origin, gw } = await originBehindGateway(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nETag: "e"\r\n\r\n');
  const head = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n').replace(/^GET/, 'HEAD'), t);
  assert.match(head, /^HTTP\/1\.1 200 [^]*ETag: "e"/, head);
  const { origin: o304, gw: gw304 } = await originBehindGateway(t, 'HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: gzip, chunked\r\nETag: "e"\r\n\r\n');
  const notModified = await exchange(gw304, get(o304.port, '/', 'Connection: close\r\n'), t);
  assert.match(notModified, /^HTTP\/1\.1 304 [^]*ETag: "e"/, notModified);
});

test('an origin response with more than a thousand fields is judged by all of them: a coding named past the thousandth is still a 502, and the last field still reaches the client', async (t) => {
  const many = Array.from({ length: 1100 }, (_, i) => `X-F${i}: v\r\n`).join('');
  const { origin, gw } = await originBehindGateway(t, `HTTP/1.1 200 OK\r\n${many}Transfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`);
  const got = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
  assert.match(got, /^HTTP\/1\.1 502 /, 'node dropped the fields past its count, the coding among them');
  assert.doesNotMatch(got, /hello/);
  const { origin: o2, gw: gw2 } = await originBehindGateway(t, `HTTP/1.1 200 OK\r\n${many}Connection: X-F3\r\nX-Last: 1\r\nContent-Length: 2\r\n\r\nok`);
  const whole = await exchange(gw2, get(o2.port, '/', 'Connection: close\r\n'), t);
  assert.match(whole, /^HTTP\/1\.1 200 /);
  assert.match(whole, /\r\nX-F1099: v\r\nX-Last: 1\r\n/, 'every field passed on');
  assert.doesNotMatch(whole, /\r\nX-F3: /, 'the field Connection names is removed');
});

for (const version of ['HTTP/2.0', 'HTTP/0.9']) {
  test(`an origin answering with a status line in ${version} is a 502, not an HTTP/1.1 response made of it`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, `${version} 200 OK\r\nContent-Length: 2\r\n\r\nok`);
    const answer = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
    assert.match(answer, /^HTTP\/1\.1 502 /, answer);
    const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${origin.port}`);
    assert.equal(line?.['status'], 502);
    assert.match(String(line?.['error']), /version/);
  });
}

for (const [what, answer] of [
  ['a head that does not parse (a folded field)', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok'],
  ['a body that does not parse (an invalid chunk size)', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZZ\r\nok\r\n0\r\n\r\n'],
] as const) {
  test(`an origin answering ${what} on a direct route: the 502 says the origin's response did not parse, not "upstream failure"`, async (t) => {
    const { origin, gw } = await originBehindGateway(t, answer);
    const got = await exchange(gw, get(origin.port, '/', 'Connection: close\r\n'), t);
    assert.match(got, /^HTTP\/1\.1 502 /);
    assert.match(got, /\r\n\r\nbad gateway: origin response did not parse \(HPE_[A-Z_]+\)/, got);
  });
}
