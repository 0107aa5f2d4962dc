import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closedPort, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';

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
  assert.match(text, /^socksgate_dns_cache\{counter="hits"\} \d+$/m);
  assert.match(text, /^socksgate_upstream_healthy\{upstream="spare",pool=""\} 1$/m);
  assert.match(text, /^socksgate_outbound_requests_total\{outbound="direct",result="ok"\} 1$/m);
  assert.equal((await fetch(`http://127.0.0.1:${admin.port}/nope`)).status, 404);
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
