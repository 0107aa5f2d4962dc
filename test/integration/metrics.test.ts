import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { curl } from '../helpers/curl.js';
import { closedPort, closedWithin, socksConnect, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';

test('the admin listener serves socksgate_* metrics and /healthz', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0 },
    upstreams: { spare: { type: 'socks5', host: '127.0.0.9', port: 1080 } },
    rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  socket.destroy();
  await gw.accessLog((l) => l.rule === 'lo');
  const admin = gw.gw.adminAddress!;
  const health = await fetch(`http://127.0.0.1:${admin.port}/healthz`);
  assert.equal(health.status, 200);
  const text = await (await fetch(`http://127.0.0.1:${admin.port}/metrics`)).text();
  assert.match(text, /^socksgate_connections_total\{protocol="socks5",command="connect",rep="0"\} 1$/m);
  assert.match(text, /^socksgate_rule_matches_total\{rule="lo",action="direct"\} 1$/m);
  assert.match(text, /^socksgate_handshake_seconds_count 1$/m);
  assert.match(text, /^socksgate_connect_seconds_count\{outbound="direct"\} 1$/m);
  assert.match(text, /^socksgate_dns_cache_total\{counter="hits"\} \d+$/m);
  assert.match(text, /^socksgate_upstream_healthy\{upstream="spare",pool=""\} 1$/m);
  assert.match(text, /^socksgate_outbound_requests_total\{outbound="direct",result="ok"\} 1$/m);
  assert.equal((await fetch(`http://127.0.0.1:${admin.port}/nope`)).status, 404);
});

/** Every family in Prometheus text: its TYPE and whether a HELP line came with it. */
function families(text: string): Map<string, { type: string; help: boolean }> {
  const out = new Map<string, { type: string; help: boolean }>();
  const helped = new Set<string>();
  for (const line of text.split('\n')) {
    const help = /^# HELP (\S+) /.exec(line);
    if (help) helped.add(help[1]!);
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) out.set(type[1]!, { type: type[2]!, help: helped.has(type[1]!) });
  }
  return out;
}

test('every family the admin listener serves has HELP and TYPE, and every counter is named *_total (Prometheus naming)', async (t) => {
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0 } });
  t.after(() => gw.close());
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  const all = families(text);
  assert.ok(all.size > 20, text);
  for (const [name, { type, help }] of all) {
    assert.ok(help, `${name} has no HELP line`);
    assert.ok(name.startsWith('socksgate_'), name);
    if (type === 'counter') assert.match(name, /_total$/, `counter ${name} is not named *_total`);
  }
  // The DNS cache's counters (PRODUCT.md: hits and misses), under a counter's name.
  assert.match(text, /^socksgate_dns_cache_total\{counter="hits"\} \d+$/m);
  assert.match(text, /^socksgate_dns_cache_total\{counter="misses"\} \d+$/m);
});

test('with metrics.port 0 the listening line names the admin address the system picked; without metrics it names none', async (t) => {
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0 } });
  t.after(() => gw.close());
  const listening = gw.logs.find((l) => l.msg === 'socksgate listening');
  assert.equal(typeof listening?.admin, 'string', JSON.stringify(listening));
  const health = await fetch(`http://${String(listening!.admin)}/healthz`);
  assert.equal(health.status, 200);
  const plain = await startGateway();
  t.after(() => plain.close());
  assert.ok(!('admin' in plain.logs.find((l) => l.msg === 'socksgate listening')!));
});

test('a failed outbound connect is counted as such', async (t) => {
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0 } });
  t.after(() => gw.close());
  const port = await closedPort();
  await assert.rejects(
    socksConnect(gw.port, { host: '127.0.0.1', port }, 2_000),
  );
  await gw.accessLog((l) => l.rep === 5);
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  assert.match(text, /^socksgate_outbound_requests_total\{outbound="direct",result="fail"\} 1$/m);
  assert.match(text, /^socksgate_connections_total\{protocol="socks5",command="connect",rep="5"\} 1$/m);
});

/** One sample from Prometheus text, or undefined when the series does not exist. */
function configOf(partial: Record<string, unknown>): Config {
  return parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), '/tmp/socksgate-test.yaml', {});
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

test('counters move with real traffic, per rule and per configured user; an unknown user makes no label', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, per_user: true },
    auth: { users: [{ username: 'alice', password: 'pw-a' }, { username: 'bob', password: 'pw-b' }] },
    rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  t.after(() => gw.close());
  const scrape = async (): Promise<string> => (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  const before = await scrape();
  assert.equal(sample(before, 'socksgate_user_connections_total{user="alice"}'), undefined);

  const exchange = async (user: string, password: string, payload: string): Promise<void> => {
    const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, { userId: user, password });
    socket.write(payload);
    await once(socket, 'data');
    socket.end();
    await closedWithin(socket);
  };
  await exchange('alice', 'pw-a', 'x'.repeat(1000));
  await exchange('alice-session-7', 'pw-a', 'y'.repeat(500));
  await exchange('bob', 'pw-b', 'z'.repeat(10));
  await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, { userId: 'mallory', password: 'guess' }));
  for (const user of ['alice', 'bob', 'mallory']) await gw.accessLog((l) => l.user === user);
  await gw.accessLog((l) => l.user === 'alice' && l.up === 500);

  const after = await scrape();
  assert.equal(sample(after, 'socksgate_user_connections_total{user="alice"}'), 2);
  assert.equal(sample(after, 'socksgate_user_connections_total{user="bob"}'), 1);
  assert.equal(sample(after, 'socksgate_user_bytes_total{user="alice",direction="up"}'), 1500);
  assert.equal(sample(after, 'socksgate_user_bytes_total{user="alice",direction="down"}'), 1500);
  assert.equal(sample(after, 'socksgate_user_bytes_total{user="bob",direction="up"}'), 10);
  assert.doesNotMatch(after, /mallory/, 'a name the config does not know makes no series');
  assert.equal(sample(after, 'socksgate_bytes_total{direction="up"}'), 1510);
  assert.equal(sample(after, 'socksgate_rule_bytes_total{rule="lo",direction="down"}'), 1510);
  assert.equal(sample(after, 'socksgate_rule_matches_total{rule="lo",action="direct"}'), 3);
  assert.equal(sample(after, 'socksgate_connections_total{protocol="socks5",command="connect",rep="0"}'), 3);
  assert.equal(sample(after, 'socksgate_connections_active'), 0);
  assert.match(after, /^socksgate_limit_refusals_total\{limit="max_connections"\} 0$/m);
  assert.match(after, /^# TYPE socksgate_egress_denials_total counter$/m);
});

test('a refused login under a configured name is logged with that name but counted as no user\'s connection', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, per_user: true },
    auth: { users: [{ username: 'alice', password: 'pw-a' }] },
  });
  t.after(() => gw.close());
  // Anyone can send alice's name with a guess: that must not add to alice's connections.
  for (let i = 0; i < 3; i++) await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, { userId: 'alice', password: `guess-${i}` }));
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, { userId: 'alice', password: 'pw-a' });
  socket.destroy();
  await gw.accessLog((l) => l.user === 'alice' && l.rep === 0);
  const refused = gw.logs.filter((l) => l.user === 'alice' && l.error === 'authentication failed');
  assert.equal(refused.length, 3, 'each refused login is logged with the name it gave');
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  assert.equal(sample(text, 'socksgate_user_connections_total{user="alice"}'), 1);
});

test('an HTTP 407 for a wrong password is logged with the name given, counted as no user\'s (CONNECT and absolute-form)', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, per_user: true },
    auth: { users: [{ username: 'alice', password: 'pw-a' }] },
  });
  t.after(() => gw.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const tunnel = await curl(['-p', '-x', proxy, '--proxy-user', 'alice:guess-1', `${web.url}/t`]);
  assert.match(tunnel.stderr, /407/);
  const forward = await curl(['-s', '-o', '/dev/null', '-w', '%{http_code}', '-x', proxy, '--proxy-user', 'alice:guess-2', `${web.url}/f`]);
  assert.equal(forward.stdout, '407');
  const right = await curl(['-x', proxy, '--proxy-user', 'alice:pw-a', `${web.url}/ok`]);
  assert.equal(right.code, 0, right.stderr);
  await gw.accessLog((l) => l.user === 'alice' && l.status === 200);
  const refused = await gw.accessLog(() => gw.logs.filter((l) => l.status === 407).length >= 2);
  assert.ok(refused);
  const lines = gw.logs.filter((l) => l.status === 407);
  assert.deepEqual(lines.map((l) => [l.cmd, l.user]).sort(), [['connect', 'alice'], ['connect', 'alice']], 'both refusals name the user tried');
  assert.ok(!JSON.stringify(gw.logs).includes('guess-'), 'no password in the logs');
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  assert.equal(sample(text, 'socksgate_user_connections_total{user="alice"}'), 1);
});

test('a request on a kept-alive HTTP connection is counted for its user by the config live when it ends, not the one the connection began under', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const alice = { username: 'alice', password: 'pw-a' };
  const settings = (users: Array<{ username: string; password: string }>) => ({
    metrics: { host: '127.0.0.1', port: 0, per_user: true },
    auth: { users },
    rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }],
  });
  const gw = await startGateway(settings([alice]));
  t.after(() => gw.close());
  const s = connect(gw.port, '127.0.0.1');
  t.after(() => s.destroy());
  let received = '';
  s.setEncoding('latin1').on('data', (d: string) => (received += d));
  const get = (path: string, user: string, password: string): string =>
    `GET ${web.url}${path} HTTP/1.1\r\nHost: 127.0.0.1:${web.port}\r\nProxy-Authorization: Basic ${Buffer.from(`${user}:${password}`).toString('base64')}\r\n\r\n`;
  const answered = async (path: string): Promise<void> => {
    for (let waited = 0; !received.includes(`hello ${path}`) && waited < 5_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
    assert.ok(received.includes(`hello ${path}`), `${path} answered on the kept-alive connection`);
  };
  s.write(get('/first', 'alice', 'pw-a'));
  await answered('/first');
  // bob comes with the reload: his request on the connection alice's began is his.
  await gw.gw.reload(configOf(settings([alice, { username: 'bob', password: 'pw-b' }])));
  s.write(get('/second', 'bob', 'pw-b'));
  await answered('/second');
  await gw.accessLog((l) => l.user === 'bob' && l.status === 200);
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  assert.equal(sample(text, 'socksgate_user_connections_total{user="alice"}'), 1);
  assert.equal(sample(text, 'socksgate_user_connections_total{user="bob"}'), 1);
});

test('without per_user no user series exist', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0 },
    auth: { users: [{ username: 'alice', password: 'pw-a' }] },
  });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, { userId: 'alice', password: 'pw-a' });
  socket.destroy();
  await gw.accessLog((l) => l.user === 'alice');
  const text = await (await fetch(`http://127.0.0.1:${gw.gw.adminAddress!.port}/metrics`)).text();
  assert.doesNotMatch(text, /user="alice"/);
  assert.match(text, /^socksgate_connections_total\{protocol="socks5",command="connect",rep="0"\} 1$/m);
});
