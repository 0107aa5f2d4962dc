// Names the rules and the resolvers would read differently are refused before any rule sees
// them: an empty label, a NUL, a backslash escape. A real UDP DNS server answers bad.test and
// example.com, and logs every question it gets.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { startDnsServer } from '../helpers/dns-server.js';
import { httpExchange, rawClient, readBytes, socks5Rep, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';
import { curl } from '../helpers/curl.js';
import { startDante, startScriptedSocks } from '../helpers/upstreams.js';
import { listenTracked } from '../helpers/servers.js';
import { SocksClient } from 'socks';

/** An echo server, a name server answering `names` with 127.0.0.1, and a gateway asking it, routed by `routing`; all closed after the test. */
async function namesSetup(t: TestContext, names: string[], routing: Record<string, unknown>) {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dns = await startDnsServer(Object.fromEntries(names.map((n) => [n, { A: ['127.0.0.1'] }])));
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '1s' }, ...routing });
  t.after(() => gw.close());
  return { echo, dns, gw };
}

const TRICKS = ['bad.test..', 'ba\\d.test', '\\098ad.test', 'bad.test\0x', 'BAD.test\0.example.com'];

test('a block rule for bad.test holds against names a resolver reads as bad.test: 0x04 (HTTP 400), nothing looked up', async (t) => {
  const { echo, dns, gw } = await namesSetup(t, ['bad.test', 'ok.test'], { rules: [{ name: 'bad', domains: ['bad.test'], action: 'block' }], default: 'direct' });

  assert.equal(await socks5Rep(gw.port, { host: 'bad.test', port: echo.port }), 0x02, 'the rule itself');
  assert.equal(await socks5Rep(gw.port, { host: 'bad.test.', port: echo.port }), 0x02, 'one trailing dot is the same name');
  for (const host of TRICKS) assert.equal(await socks5Rep(gw.port, { host, port: echo.port }), 0x04, JSON.stringify(host));
  assert.equal(dns.queries('bad.test'), 0, 'no question for bad.test was ever asked');
  assert.equal(await socks5Rep(gw.port, { host: 'ok.test', port: echo.port }), 0x00, 'a plain name still goes');

  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  s.write(`CONNECT bad.test..:${echo.port} HTTP/1.1\r\nHost: bad.test..:${echo.port}\r\n\r\n`);
  assert.match((await readBytes(s, 12)).toString(), /^HTTP\/1\.1 400/);
  const line = await gw.accessLog((l) => l['protocol'] === 'http');
  assert.match(String(line?.['error']), /not a hostname/);
});

test('an allow-list for example.com is not widened by a NUL inside the name', async (t) => {
  const { echo, dns, gw } = await namesSetup(t, ['evil.test', 'www.example.com'], { rules: [{ name: 'allowed', domains: ['example.com'], action: 'direct' }], default: 'block' });
  assert.equal(await socks5Rep(gw.port, { host: 'www.example.com', port: echo.port }), 0x00);
  assert.equal(await socks5Rep(gw.port, { host: 'evil.test\0.example.com', port: echo.port }), 0x04);
  assert.equal(dns.queries('evil.test'), 0);
});

test('a cidrs rule holds against numeric spellings of its addresses (127.1, 2130706433, 0x7f000001) bound for an upstream that reads them as IPv4', async (t) => {
  // Dante resolves with getaddrinfo, whose inet_aton turns these names into 127.0.0.1.
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dante = await startDante({ host: '127.0.0.183' });
  t.after(() => dante.close());
  const gw = await startGateway({
    upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } },
    rules: [{ name: 'loopback', cidrs: ['127.0.0.0/8'], action: 'block' }],
    default: 'dante',
  });
  t.after(() => gw.close());

  assert.equal(await socks5Rep(gw.port, { host: '127.0.0.1', port: echo.port }), 0x02, 'the rule itself');
  for (const host of ['127.1', '2130706433', '0x7f000001', '0177.0.0.1', 'a.0x1']) {
    assert.equal(await socks5Rep(gw.port, { host, port: echo.port }), 0x04, host);
  }
  const s4 = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s4.destroy());
  await once(s4, 'connect');
  s4.write(Buffer.concat([Buffer.from([4, 1, echo.port >> 8, echo.port & 0xff, 0, 0, 0, 1, 0]), Buffer.from('127.1\0')]));
  assert.equal((await readBytes(s4, 8))[1], 0x5b, 'SOCKS4a');
  const h = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => h.destroy());
  await once(h, 'connect');
  h.write(`CONNECT 127.1:${echo.port} HTTP/1.1\r\nHost: 127.1:${echo.port}\r\n\r\n`);
  assert.match((await readBytes(h, 12)).toString(), /^HTTP\/1\.1 400/, 'HTTP CONNECT');
  assert.equal(echo.peers.length, 0, 'nothing reached 127.0.0.1 through the upstream');
  const line = await gw.accessLog((l) => l['dest'] === `127.1:${echo.port}`);
  assert.equal(line?.['rule'], undefined, 'refused before any rule');
  assert.match(String(line?.['error']), /not a hostname/);
});

test('a rule and a dns.hosts name written in Unicode meet the A-label (xn--) that clients send', async (t) => {
  const origin = await startHttpServer();
  t.after(() => origin.close());
  // Knows no name: a dns.hosts miss is an NXDOMAIN here, never a query to the system resolver.
  const dns = await startDnsServer({});
  t.after(() => dns.close());
  const gw = await startGateway({
    dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '1s', hosts: { 'bücher.test': '127.0.0.1' } },
    rules: [{ name: 'idn', domains: ['bücher.test'], action: 'direct' }],
    default: 'block',
  });
  t.after(() => gw.close());

  assert.equal(await socks5Rep(gw.port, { host: 'xn--bcher-kva.test', port: origin.port }), 0x00);
  // curl turns the Unicode name of the URL into its A-label (IDNA) before it asks the proxy.
  for (const proxy of [`socks5h://127.0.0.1:${gw.port}`, `http://127.0.0.1:${gw.port}`]) {
    const r = await curl(['-x', proxy, `http://bücher.test:${origin.port}/idn`]);
    assert.match(r.stdout, /^hello \/idn from 127\.0\.0\.1/, proxy);
  }
  const line = await gw.accessLog((l) => l['dest'] === `xn--bcher-kva.test:${origin.port}`);
  assert.equal(line?.['rule'], 'idn');
  assert.equal(dns.queries('xn--bcher-kva.test'), 0, 'answered from dns.hosts');
});

test('a name sent in UTF-8 (bücher.test) goes on as its A-label: a Unicode rule matches it, dns.servers are asked for it, the log names it', async (t) => {
  const { echo, dns, gw } = await namesSetup(t, ['xn--bcher-kva.test'], {
    rules: [{ name: 'idn', domains: ['bücher.test'], action: 'direct' }],
    default: 'block',
  });
  // SOCKS5 by hand: the socks package counts the name's length in characters, not its bytes.
  assert.equal(await socks5Rep(gw.port, { host: 'bücher.test', port: echo.port }), 0x00, 'SOCKS5');
  // SOCKS4a through the socks package, which writes the name's UTF-8 bytes as they are.
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: gw.port, type: 4 },
    command: 'connect',
    destination: { host: 'bücher.test', port: echo.port },
    timeout: 3_000,
  });
  t.after(() => socket.destroy());
  socket.write('ping');
  assert.equal((await readBytes(socket, 4)).toString(), 'ping', 'SOCKS4a');
  socket.destroy();
  for (const protocol of ['socks5', 'socks4']) {
    const line = await gw.accessLog((l) => l['protocol'] === protocol);
    assert.equal(line?.['dest'], `xn--bcher-kva.test:${echo.port}`, protocol);
    assert.equal(line?.['rule'], 'idn', protocol);
  }
  assert.ok(dns.queries('xn--bcher-kva.test') > 0, 'asked in its A-label form');
  // An absolute-form URL with the name percent-encoded reaches the same name (the URL standard);
  // raw UTF-8 in a request target is not HTTP (RFC 9112 §3.2), and node's parser answers 400.
  const origin = await startHttpServer();
  t.after(() => origin.close());
  const h = await rawClient(gw.port);
  t.after(() => h.destroy());
  const answer = await httpExchange(h, `GET http://b%C3%BCcher.test:${origin.port}/idn HTTP/1.1\r\nHost: b%C3%BCcher.test\r\nConnection: close\r\n\r\n`);
  assert.match(answer, /^HTTP\/1\.1 200 .*\r\n\r\nhello \/idn from 127\.0\.0\.1/s);
  assert.equal((await gw.accessLog((l) => l['protocol'] === 'http'))?.['dest'], `xn--bcher-kva.test:${origin.port}`);
});

/** Test instrument: a SOCKS4a responder that records the HOSTNAME bytes it gets, grants, and writes "ok". */
async function scriptedSocks4a(t: TestContext): Promise<{ port: number; names: string[] }> {
  const names: string[] = [];
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      const userEnd = buf.indexOf(0, 8);
      const nameEnd = userEnd < 0 ? -1 : buf.indexOf(0, userEnd + 1);
      if (nameEnd < 0) return;
      names.push(buf.toString('latin1', userEnd + 1, nameEnd));
      s.end(Buffer.concat([Buffer.from([0, 0x5a, 0, 0, 0, 0, 0, 0]), Buffer.from('ok')]));
    });
  });
  const l = await listenTracked(srv);
  t.after(() => l.close());
  return { port: l.port, names };
}

/** Test instrument: an HTTP proxy that records each CONNECT line as sent, answers 200, and writes "ok". */
async function scriptedHttpProxy(t: TestContext): Promise<{ port: number; lines: string[] }> {
  const lines: string[] = [];
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (c: Buffer) => {
      head += c.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      lines.push(head.slice(0, head.indexOf('\r\n')));
      s.end('HTTP/1.1 200 Connection established\r\n\r\nok');
    });
  });
  const l = await listenTracked(srv);
  t.after(() => l.close());
  return { port: l.port, lines };
}

test('a name sent in UTF-8 reaches socks5, socks4a and http upstreams (remote DNS) as its A-label', async (t) => {
  const s5 = await startScriptedSocks();
  t.after(() => s5.close());
  const s4 = await scriptedSocks4a(t);
  const http = await scriptedHttpProxy(t);
  const gw = await startGateway({
    upstreams: {
      s5: { type: 'socks5', host: '127.0.0.1', port: s5.port },
      s4: { type: 'socks4', host: '127.0.0.1', port: s4.port, remote_dns: true },
      web: { type: 'http', host: '127.0.0.1', port: http.port },
    },
    rules: [
      { name: 'to-s5', domains: ['full:bücher.test'], ports: [1001], action: 's5' },
      { name: 'to-s4', domains: ['full:bücher.test'], ports: [1002], action: 's4' },
      { name: 'to-http', domains: ['full:bücher.test'], ports: [1003], action: 'web' },
    ],
    default: 'block',
  });
  t.after(() => gw.close());
  for (const port of [1001, 1002, 1003]) assert.equal(await socks5Rep(gw.port, { host: 'bücher.test', port }), 0x00, `port ${port}`);
  assert.deepEqual(s5.requests.map((r) => r.host), ['xn--bcher-kva.test']);
  assert.deepEqual(s4.names, ['xn--bcher-kva.test']);
  assert.deepEqual(http.lines, ['CONNECT xn--bcher-kva.test:1003 HTTP/1.1']);
});

test('a UTF-8 name IDNA cannot convert, or bytes that are not UTF-8, are refused 0x04 before any rule, logged as sent', async (t) => {
  const { echo, dns, gw } = await namesSetup(t, [], { default: 'direct' });
  assert.equal(await socks5Rep(gw.port, { host: 'bü cher.test', port: echo.port }), 0x04);
  const line = await gw.accessLog((l) => String(l['dest']).endsWith(`:${echo.port}`));
  assert.equal(line?.['dest'], `bü cher.test:${echo.port}`, 'the UTF-8 text, not its bytes read one by one');
  assert.equal(line?.['rule'], undefined, 'refused before any rule');
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(Buffer.from([5, 1, 0]));
  await readBytes(s, 2);
  s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, 7]), Buffer.from('b\xffr.test', 'latin1'), Buffer.from([echo.port >> 8, echo.port & 0xff])]));
  assert.equal((await readBytes(s, 2))[1], 0x04, 'not UTF-8');
  assert.equal(echo.peers.length, 0);
  assert.equal(dns.queries('bü cher.test') + dns.queries('b\xffr.test'), 0, 'nothing looked up');
});
