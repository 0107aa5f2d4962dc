// Bad HTTP input gets the contract's answer, and a healthy client on the same gateway is
// served throughout. Status mapping: 403 blocked, 502 refused or unknown name, 504 timeout.
import { test, before, after } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { curl } from '../helpers/curl.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { closedPort, closedWithin, rawClient, readBytes, startGateway, startHttpServer, type TestGateway, type TestServer } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

let gw: TestGateway;
let web: TestServer & { url: string };
let dns: DnsServer;
let silent: { port: number; close(): Promise<void> };

/**
 * A delaying SOCKS5 upstream (test instrument): it answers the greeting with "no auth" and then
 * never answers the request, so the gateway's connect_timeout runs out waiting on it.
 */
async function startSilentSocks(): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s: Socket) => {
    s.on('error', () => {});
    s.once('data', () => s.write(Buffer.from([5, 0])));
  });
  return listenTracked(server);
}

before(async () => {
  web = await startHttpServer();
  dns = await startDnsServer({ 'gone.test': { nxdomain: true } });
  silent = await startSilentSocks();
  gw = await startGateway({
    limits: { handshake_timeout: '1s', connect_timeout: '500ms' },
    dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '500ms' },
    upstreams: { slow: { type: 'socks5', host: '127.0.0.1', port: silent.port } },
    rules: [
      { name: 'no-two', cidrs: ['127.0.0.2/32'], action: 'block' },
      { name: 'slow', cidrs: ['127.0.0.3/32'], action: 'slow' },
    ],
  });
});
after(async () => {
  await gw.close();
  await web.close();
  await dns.close();
  await silent.close();
});

/** A healthy absolute-form request on the same gateway: the bad client disturbed nothing. */
async function stillServes(): Promise<void> {
  const r = await curl(['-x', `http://127.0.0.1:${gw.port}`, `${web.url}/ok`]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^hello \/ok/);
}

async function exchange(bytes: string): Promise<{ text: string; closed: boolean }> {
  const s = await rawClient(gw.port);
  s.write(bytes);
  const got = await readBytes(s, 4096, 3_000);
  const closed = await closedWithin(s, 3_000);
  s.destroy();
  return { text: got.toString('latin1'), closed };
}

test('an origin-form request gets 400 and a short reason', async () => {
  const { text } = await exchange('GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /absolute URL/);
  await stillServes();
});

test('an HTTP/1.1 absolute-form request without Host gets 400 with a reason, and is logged with it', async () => {
  const s = await rawClient(gw.port);
  const port = s.localPort;
  s.write(`GET ${web.url}/no-host HTTP/1.1\r\nConnection: close\r\n\r\n`);
  const got = await readBytes(s, 4096, 3_000);
  s.destroy();
  const text = got.toString('latin1');
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /Host/, text);
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.client === `127.0.0.1:${port}`);
  assert.equal(line?.status, 400, JSON.stringify(line));
  assert.match(String(line?.error), /Host/);
  await stillServes();
});

test('an absolute-form request with more than one Host field, or a Host with whitespace in it, gets 400 and nothing is forwarded (RFC 9112 §3.2)', async () => {
  for (const hosts of ['Host: a.example\r\nHost: b.example\r\n', 'Host: a.example b.example\r\n']) {
    const { text } = await exchange(`GET ${web.url}/two-hosts HTTP/1.1\r\n${hosts}Connection: close\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 400 /, text);
    assert.match(text, /Host/, text);
    assert.doesNotMatch(text, /hello/, 'nothing reached the origin');
  }
  await stillServes();
});

test('a 400 for its Host keeps the connection: the refused request body is dropped, not read as a request, and the next one is served', async () => {
  const smuggled = `GET ${web.url}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`;
  for (const hosts of ['Host: a.example\r\nHost: b.example\r\n', '', 'Host: a.example b.example\r\n']) {
    const s = await rawClient(gw.port);
    const text: Buffer[] = [];
    s.on('data', (d: Buffer) => text.push(d));
    s.write(`POST ${web.url}/first HTTP/1.1\r\n${hosts}Content-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    s.write(`GET ${web.url}/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    assert.ok(await closedWithin(s, 3_000), 'closed after the second answer');
    const got = Buffer.concat(text).toString('latin1');
    assert.match(got, /^HTTP\/1\.1 400 [\s\S]*Host[\s\S]*HTTP\/1\.1 200 [\s\S]*hello \/next/, JSON.stringify(hosts));
    assert.doesNotMatch(got, /smuggled|\/first/);
  }
});

test('credentials in the userinfo of a CONNECT or absolute-form target: 400, and neither the answer nor the access log repeats them', async () => {
  const port = Number(new URL(web.url).port);
  for (const head of [`CONNECT bob:S3cret-PW@127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`, `GET http://bob:S3cret-PW@127.0.0.1:${port}/ HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`]) {
    const s = await rawClient(gw.port);
    const client = `127.0.0.1:${s.localPort}`;
    s.write(head);
    const text = (await readBytes(s, 4096, 3_000)).toString('latin1');
    s.destroy();
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /userinfo/);
    assert.doesNotMatch(text, /S3cret/, text);
    const line = await gw.accessLog((l) => l.client === client);
    assert.equal(line?.status, 400, JSON.stringify(line));
    assert.doesNotMatch(JSON.stringify(line), /S3cret/);
  }
  await stillServes();
});

test('Transfer-Encoding in an HTTP/1.0 request: 400, then closed, and what followed it is not served as a request of its own (RFC 9112 §6.1)', async () => {
  // A front that reads HTTP/1.0 without chunked coding takes all of this for one request's body.
  const smuggled = `GET ${web.url}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`;
  const { text, closed } = await exchange(
    `POST ${web.url}/first HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n${smuggled}`,
  );
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.match(text, /Transfer-Encoding in an HTTP\/1\.0 request/);
  assert.doesNotMatch(text, /hello/, 'nothing reached the origin');
  assert.ok(closed, 'closed after the answer');
  const line = await gw.accessLog((l) => l['status'] === 400 && /HTTP\/1\.0/.test(String(l['error'])));
  assert.equal(line?.['rep'], 1);
  await stillServes();
});

test('a request line claiming an HTTP major version other than 1 (HTTP/2.0, HTTP/0.9) gets 505, absolute-form and CONNECT alike, nothing forwarded, then closed', async () => {
  const port = Number(new URL(web.url).port);
  for (const version of ['2.0', '0.9']) {
    for (const request of [`GET ${web.url}/v HTTP/${version}\r\nHost: x\r\n\r\n`, `CONNECT 127.0.0.1:${port} HTTP/${version}\r\nHost: x\r\n\r\nGET /in-tunnel HTTP/1.1\r\nHost: x\r\n\r\n`]) {
      const { text, closed } = await exchange(request);
      assert.match(text, /^HTTP\/1\.1 505 /, `${request.split('\r\n')[0]}: ${text}`);
      assert.doesNotMatch(text, /hello|200 Connection established/, 'nothing forwarded');
      assert.ok(closed, 'closed after the answer');
    }
  }
  const line = await gw.accessLog((l) => l['status'] === 505);
  assert.equal(line?.['rep'], 1);
  await stillServes();
});

test('garbage after an ASCII first byte: 400, then closed', async () => {
  const { text, closed } = await exchange('Hxyz \x01\x02 nonsense\r\n\r\n');
  assert.match(text, /^HTTP\/1\.1 400 /);
  assert.ok(closed);
  await stillServes();
});

test('oversize headers: 431, then closed', async () => {
  const { text, closed } = await exchange(`GET ${web.url}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.ok(closed);
  await stillServes();
});

for (const drip of [true, false]) {
  test(`a request head that ${drip ? 'never ends' : 'stops halfway'} gets 408 and is closed at handshake_timeout`, async () => {
    const s = await rawClient(gw.port);
    s.on('error', () => {}); // a drip written as the gateway closes may come back as a reset
    const got: Buffer[] = [];
    s.on('data', (c: Buffer) => got.push(c));
    const port = s.localPort;
    s.write(`GET ${web.url}/ HTTP/1.1\r\nHost: x\r\n`);
    const timer = drip ? setInterval(() => s.write('X-Drip: 1\r\n'), 200) : undefined; // activity must not extend it
    try {
      assert.ok(await closedWithin(s, 5_000));
    } finally {
      clearInterval(timer);
      s.destroy();
    }
    assert.match(Buffer.concat(got).toString('latin1'), /^HTTP\/1\.1 408 /);
    const line = await gw.accessLog((l) => l.protocol === 'http' && l.client === `127.0.0.1:${port}`);
    assert.equal(line?.error, 'handshake timeout');
    assert.equal(line?.status, 408, JSON.stringify(gw.logs.slice(-3)));
    assert.equal(line?.rep, 0x01, JSON.stringify(line));
    await stillServes();
  });
}

test('handshake_timeout runs from accept for HTTP too: a head begun late and dripping in gets its 408 at the deadline', async () => {
  const s = await rawClient(gw.port);
  s.on('error', () => {}); // a drip written as the gateway closes may come back as a reset
  const accepted = performance.now();
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  // Silent for most of the 1 s deadline, then a head that never ends, a field every 50 ms.
  await new Promise((r) => setTimeout(r, 700));
  const headBegan = performance.now();
  s.write(`GET ${web.url}/ HTTP/1.1\r\nHost: x\r\n`);
  const timer = setInterval(() => s.write('X-Drip: 1\r\n'), 50);
  let closedAt: number;
  let closedAfterHead: number;
  try {
    assert.ok(await closedWithin(s, 5_000));
    closedAt = performance.now() - accepted;
    closedAfterHead = performance.now() - headBegan;
  } finally {
    clearInterval(timer);
    s.destroy();
  }
  assert.match(Buffer.concat(got).toString('latin1'), /^HTTP\/1\.1 408 /);
  // Counted from the first byte instead, the 1 s deadline could not fall before 1 s after the head began (a timer
  // fires a millisecond early at most); counted from accept, it falls about 300 ms after it: 600 ms to spare on a loaded machine.
  assert.ok(closedAfterHead < 900, `closed ${Math.round(closedAt)} ms after accept, ${Math.round(closedAfterHead)} ms after the head began, with handshake_timeout 1s`);
  await stillServes();
});

test('a malformed or oversize head is logged with a reply code next to its status, like every other refusal', async () => {
  for (const [bytes, status] of [
    ['Hxyz \x01\x02 nonsense\r\n\r\n', 400],
    [`GET ${web.url}/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431],
  ] as const) {
    const s = await rawClient(gw.port);
    const port = s.localPort;
    s.write(bytes);
    assert.ok(await closedWithin(s, 3_000));
    s.destroy();
    const line = await gw.accessLog((l) => l.protocol === 'http' && l.client === `127.0.0.1:${port}`);
    assert.equal(line?.status, status, JSON.stringify(line));
    assert.equal(line?.rep, 0x01, JSON.stringify(line));
  }
});

test('a client that resets in the middle of its first head is logged with why, as a SOCKS client is', async () => {
  const s = await rawClient(gw.port);
  const port = s.localPort;
  await new Promise<void>((resolve) => s.write(`GET ${web.url}/ HTTP/1.1\r\nHo`, () => resolve()));
  await new Promise((r) => setTimeout(r, 100)); // the gateway's parser holds the partial head
  s.resetAndDestroy();
  const line = await gw.accessLog((l) => l.protocol === 'http' && l.client === `127.0.0.1:${port}`);
  assert.ok(line, 'one access-log line for the connection');
  assert.equal(line['error'], 'closed during handshake', JSON.stringify(line));
  await stillServes();
});

test('status mapping: blocked 403, refused 502, unknown name 502, connect timeout 504', async () => {
  const status = async (url: string, tunnel: boolean): Promise<string> => {
    // With -p, a refused tunnel's status is the CONNECT response's (http_connect).
    const r = await curl(['-o', '/dev/null', '-w', tunnel ? '%{http_connect}' : '%{http_code}', ...(tunnel ? ['-p'] : []), '-x', `http://127.0.0.1:${gw.port}`, url]);
    return r.stdout;
  };
  const refused = await closedPort();
  for (const tunnel of [false, true]) {
    const code = (url: string) => status(url, tunnel);
    assert.equal(await code(`http://127.0.0.2:${web.port}/`), '403', `blocked, tunnel=${tunnel}`);
    assert.equal(await code(`http://127.0.0.1:${refused}/`), '502', `refused, tunnel=${tunnel}`);
    assert.equal(await code('http://gone.test/'), '502', `no such name, tunnel=${tunnel}`);
    assert.equal(await code(`http://127.0.0.3:${web.port}/`), '504', `timeout, tunnel=${tunnel}`);
  }
  for (const rep of [2, 5, 4, 6]) assert.ok(await gw.accessLog((l) => l.protocol === 'http' && l.rep === rep), `rep ${rep} logged`);
  await stillServes();
});
