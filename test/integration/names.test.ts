// Names the rules and the resolvers would read differently are refused before any rule sees
// them: an empty label, a NUL, a backslash escape. A real UDP DNS server answers bad.test and
// example.com, and logs every question it gets.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { startDnsServer } from '../helpers/dns-server.js';
import { readBytes, socks5Rep, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';
import { curl } from '../helpers/curl.js';
import { startDante } from '../helpers/upstreams.js';

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
