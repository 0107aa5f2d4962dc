// The gateway's DNS use end to end: curl sends names, a real UDP DNS server answers.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { curl } from '../helpers/curl.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { rawClient, socks5Rep, socksConnect, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';

test('a name routed by a CIDR rule and then connected is resolved once; repeats come from the cache', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const dns = await startDnsServer({ 'app.test': { A: ['127.0.0.1'], ttl: 60 } });
  t.after(() => dns.close());
  const gw = await startGateway({
    dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '1s' },
    rules: [{ name: 'loopback', cidrs: ['127.0.0.0/8'], action: 'direct' }],
    default: 'block',
  });
  t.after(() => gw.close());
  for (let i = 0; i < 5; i++) {
    const r = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `http://app.test:${http.port}/${i}`]);
    assert.equal(r.code, 0, r.stderr);
  }
  assert.equal(dns.queries('app.test', 'A'), 1);
  const line = await gw.accessLog((l) => l.dest === `app.test:${http.port}`);
  assert.equal(line?.rule, 'loopback');
});

test('NXDOMAIN and a silent server both give reply 0x04; an AAAA-only name reaches ::1', async (t) => {
  const http6 = await startHttpServer('::1');
  t.after(() => http6.close());
  const dns = await startDnsServer({
    'gone.test': { nxdomain: true },
    'slow.test': { silent: true },
    'six.test': { AAAA: ['::1'] },
  });
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '300ms' } });
  t.after(() => gw.close());
  for (const name of ['gone.test', 'slow.test']) {
    const r = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `http://${name}/`]);
    assert.equal(r.code, 97, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /\(4\)/, name);
  }
  const six = await curl(['--socks5-hostname', `127.0.0.1:${gw.port}`, `http://six.test:${http6.port}/v6`]);
  assert.equal(six.code, 0, six.stderr);
  assert.match(six.stdout, /^hello \/v6 from ::1/);
});

test('dns.timeout is how long a CONNECT by name waits on name servers that never answer, however many there are', async (t) => {
  const servers = [await startDnsServer({ 'slow.test': { silent: true } }), await startDnsServer({ 'slow.test': { silent: true } })];
  for (const s of servers) t.after(() => s.close());
  const gw = await startGateway({ dns: { servers: servers.map((s) => `127.0.0.1:${s.port}`), timeout: '2s' } });
  t.after(() => gw.close());
  const started = performance.now();
  assert.equal(await socks5Rep(gw.port, { host: 'slow.test', port: 80 }), 0x04);
  const ms = performance.now() - started;
  // A behaviour bound, not a speed test: not before 0.8x the timeout, not past 1.5x + 1 s.
  assert.ok(ms >= 1_600 && ms <= 4_000, `refused after ${Math.round(ms)} ms`);
  assert.ok(servers.every((s) => s.queries('slow.test', 'A') >= 1), 'both servers were asked');
});

for (const [where, rules] of [
  ['the dial', []],
  ['a rule that resolves', [{ name: 'lan', cidrs: ['10.0.0.0/8'], action: 'block' }]],
] as const) {
  test(`a client that resets while ${where} waits on a silent DNS server is let go and logged at once, not at the DNS timeout`, async (t) => {
    const dns = await startDnsServer({ 'slow.test': { silent: true } });
    t.after(() => dns.close());
    const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '30s' }, rules });
    t.after(() => gw.close());
    const s = await rawClient(gw.port);
    t.after(() => s.destroy());
    const name = Buffer.from('slow.test');
    s.write(Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, name.length]), name, Buffer.from([0, 80])]));
    // The lookup has begun (the method reply goes out with the request's, the two pipelined).
    for (let i = 0; i < 250 && dns.queries('slow.test', 'A') === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(dns.queries('slow.test', 'A') > 0, 'the gateway asked the DNS server');
    s.resetAndDestroy();
    // Held until the lookup gives up, the line came late and blamed the resolver.
    const line = await gw.accessLog((l) => l.dest === 'slow.test:80', 10_000);
    assert.ok(line, 'the connection was let go before the DNS timeout');
    assert.equal(line['error'], 'client closed the connection', JSON.stringify(line));
  });
}

test('the DNS cache counters keep counting across a reload that changes the dns section', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dns = await startDnsServer({ 'a.test': { A: ['127.0.0.1'] }, 'b.test': { A: ['127.0.0.1'] } });
  t.after(() => dns.close());
  const config = (cacheSize: number): Record<string, unknown> => ({
    dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '1s', cache_size: cacheSize },
    rules: [{ name: 'loopback', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  const gw = await startGateway(config(100));
  t.after(() => gw.close());
  const visit = (host: string): Promise<void> => socksConnect(gw.port, { host, port: echo.port }, 3_000).then(({ socket }) => void socket.destroy());
  const misses = (): Promise<number> => metricValue(gw.gw, 'socksgate_dns_cache_total', { counter: 'misses' });
  await visit('a.test');
  await visit('a.test');
  assert.equal(await misses(), 1);
  const hits = await metricValue(gw.gw, 'socksgate_dns_cache_total', { counter: 'hits' });
  await gw.gw.reload(parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...config(200) }), '/tmp/socksgate-test.yaml', {}));
  await visit('b.test');
  // A counter back at 0 reads to Prometheus as a restart (and, summed over workers, as a burst).
  assert.equal(await misses(), 2);
  assert.equal(await metricValue(gw.gw, 'socksgate_dns_cache_total', { counter: 'hits' }), hits);
});
