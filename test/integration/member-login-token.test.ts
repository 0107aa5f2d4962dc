// A pool member that logs in with a username alone (a provider's API key as the username, a
// SOCKS4 USERID): that username is the secret, and no name of the member shows it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { adminClient } from '../helpers/admin.js';
import { configFile, runCli } from '../helpers/cli.js';
import { loginFingerprint, parseMemberUrl, redact } from '../../src/config/member-url.js';
import { issuesOf } from '../helpers/config.js';
import { closedPort, socksConnect, startGateway } from '../helpers/index.js';

const TOKEN = 'member-login-token-api';

test('a member whose username is its whole login is named without it in the log, /api/upstreams, /metrics and route', async (t) => {
  const port = await closedPort(); // every member fails: its name is what the test reads
  const members = [
    `socks5://APIKEY123@127.0.0.1:${port}`,
    `socks5://APIKEY456@127.0.0.1:${port}`, // another key on the same proxy: another member
    `socks4a://USERID789@127.0.0.1:${port}`,
    `socks5://cust-session-s1:pw@127.0.0.1:${port}`, // beside a password, the username is shown
  ];
  const names = [
    `socks5://${loginFingerprint('APIKEY123')}@127.0.0.1:${port}`,
    `socks5://${loginFingerprint('APIKEY456')}@127.0.0.1:${port}`,
    `socks4a://${loginFingerprint('USERID789')}@127.0.0.1:${port}`,
    `socks5://cust-session-s1@127.0.0.1:${port}`,
  ];
  const secret = /APIKEY|USERID789|pw@/;
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN },
    upstreams: { p: { type: 'pool', members, strategy: 'failover', max_attempts: 4 } },
    default: 'p',
  });
  t.after(() => gw.close());
  await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: 9 }, 5_000));
  const line = await gw.accessLog((l) => l.member !== undefined);
  assert.ok(line && names.includes(String(line.member)), JSON.stringify(gw.logs));
  assert.ok(!gw.logs.some((l) => secret.test(JSON.stringify(l))), JSON.stringify(gw.logs));

  const api = adminClient(gw.gw, TOKEN);
  const upstreams = await api.request('GET', '/api/upstreams');
  assert.deepEqual((upstreams.json as { pools: { members: { name: string }[] }[] }).pools[0]!.members.map((m) => m.name), names);
  assert.ok(!secret.test(upstreams.text), upstreams.text);
  const metrics = await api.request('GET', '/metrics');
  assert.ok(metrics.text.includes(`upstream="${names[1]}"`), metrics.text);
  assert.ok(!secret.test(metrics.text), metrics.text);
  // The name is how the API addresses the member.
  const ban = await api.request('POST', `/api/upstreams/p/members/${encodeURIComponent(names[0]!)}/ban`, { body: { for: '1m' } });
  assert.equal(ban.status, 200, ban.text);

  const file = await configFile(`upstreams:\n  p: { type: pool, strategy: failover, members: ["${members[0]}"] }\ndefault: p\n`);
  const route = await runCli(['route', '127.0.0.1', '80', '--config', file]);
  assert.equal(route.code, 0, route.stderr);
  assert.ok(route.stdout.includes(`member=${names[0]} `), route.stdout);
  assert.ok(!secret.test(route.stdout), route.stdout);
});

test('a config error about a member with a username alone does not quote that username', () => {
  const issues = issuesOf('upstreams:\n  p: { type: pool, members: ["socks5://APIKEY123@127.0.0.1:99999", "socks4://USERID789@127.0.0.1:1080?remote_dns=maybe"] }\n');
  assert.equal(issues.length, 2, issues.join('\n'));
  assert.match(issues[0]!, /not a URL: socks5:\/\/…@127\.0\.0\.1:99999/);
  assert.ok(!issues.some((i) => /APIKEY|USERID789/.test(i)), issues.join('\n'));
  // A proxy-list line, or a name asked of the API, written user@host:port.
  assert.equal(redact('APIKEY123@127.0.0.1:1080'), '…@…');
});

test("a member whose username is its whole login keeps its name whatever the list's order, and two keys are two names", () => {
  const a = parseMemberUrl('socks5://APIKEY123@127.0.0.1:1080').display;
  const b = parseMemberUrl('socks5://APIKEY456@127.0.0.1:1080').display;
  assert.notEqual(a, b);
  for (const name of [a, b]) assert.match(name, /^socks5:\/\/…[0-9a-f]{8}@127\.0\.0\.1:1080$/);
  // Named alike in either order, and with the other key gone: a reload keeps its sessions and bans.
  const names = (members: string[]): string[] => members.map((m) => parseMemberUrl(m).display);
  assert.deepEqual(names(['socks5://APIKEY456@127.0.0.1:1080', 'socks5://APIKEY123@127.0.0.1:1080']), [b, a]);
});
