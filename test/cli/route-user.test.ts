// `socksgate route --user` and GET /api/route take the whole username grammar: session,
// lifetime and tag filters pick the member a login with that username would get.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { explainRoute, type RouteParts } from '../../src/route-explain.js';
import { runCli } from '../helpers/cli.js';
import { routePartsOf } from '../helpers/route.js';

const CONFIG = `
auth:
  users: [{ username: alice, password: pw }]
upstreams:
  crawl:
    type: pool
    strategy: sticky
    members:
      - "socks5://u:secret@127.0.0.10:1080"
      - "socks5://127.0.0.11:1080#country=de"
      - { url: "socks5://127.0.0.12:1080", tags: { country: de, city: berlin } }
rules:
  - { name: crawler, users: [alice], action: crawl }
`;

/** `text` written to a temporary socksgate.yaml, and what a routing decision reads, built from it. */
async function routeParts(t: TestContext, text: string, prefix = 'socksgate-route-user-'): Promise<{ dir: string; path: string; parts: RouteParts }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, text);
  return { dir, path, parts: await routePartsOf(t, path) };
}

test('route --user: tag filters pick the member; a malformed username is refused', async (t) => {
  const { path, parts } = await routeParts(t, CONFIG);
  const member = async (user: string): Promise<string | null | undefined> => (await explainRoute(parts, { host: 'example.org', port: 443, user })).member;
  for (let k = 0; k < 20; k++) {
    assert.match(String(await member(`alice-session-k${k}-lifetime-10m-country-de`)), /^socks5:\/\/127\.0\.0\.1[12]:1080$/);
  }
  assert.equal(await member('alice-city-berlin'), 'socks5://127.0.0.12:1080');
  assert.equal(await member('alice-country-fr'), null);

  // Without a lifetime: the same member now and in a moment (no period can end in between).
  const ok = await runCli(['route', 'example.org', '443', '--user', 'alice-session-k1-country-de', '--config', path]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout.trim(), `rule=crawler action=crawl member=${await member('alice-session-k1-country-de')} index=0`);
  assert.ok(!ok.stdout.includes('secret'));
  const bad = await runCli(['route', 'example.org', '443', '--user', 'alice-session-a.b', '--config', path]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--user must be USER\(-KEY-VALUE\)\*/);
  // Letters and digits, but no duration: the message names what a lifetime must be.
  const day = await runCli(['route', 'example.org', '443', '--user', 'alice-session-k1-lifetime-1d', '--config', path]);
  assert.equal(day.code, 2);
  assert.match(day.stderr, /lifetime a duration/);
});

test('route --user: a name that cannot log in (not in auth.users, or no auth at all) is refused, not given a route', async (t) => {
  const { dir, path, parts } = await routeParts(t, CONFIG);
  const open = join(dir, 'open.yaml');
  // No auth: a login's parameters reach no pool, which keys on the client's address.
  await writeFile(open, CONFIG.replace(/^auth:\n.*\n/m, '').replace(/users: \[alice\], /, ''));

  const unknown = await runCli(['route', 'example.org', '443', '--user', 'bob-country-de', '--config', path]);
  assert.equal(unknown.code, 2, unknown.stdout);
  assert.equal(unknown.stdout, '');
  assert.match(unknown.stderr, /--user "bob" is not in auth\.users/);
  const anonymous = await runCli(['route', 'example.org', '443', '--user', 'alice-country-de', '--config', open]);
  assert.equal(anonymous.code, 2, anonymous.stdout);
  assert.match(anonymous.stderr, /--user "alice": the configuration has no auth section/);
  const ok = await runCli(['route', 'example.org', '443', '--config', open]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^rule=crawler action=crawl member=socks5:\/\/\S+ index=0$/m);

  await assert.rejects(explainRoute(parts, { host: 'example.org', port: 443, user: 'bob' }), /not in auth\.users/);
});

test('route --source: a sticky pool keys an anonymous session on the address as the gateway has it, however it is spelled', async (t) => {
  const members = Array.from({ length: 16 }, (_, i) => `"socks5://127.0.1.${i + 1}:1080"`).join(', ');
  const { parts } = await routeParts(t, `upstreams:\n  crawl: { type: pool, strategy: sticky, members: [${members}] }\ndefault: crawl\n`, 'socksgate-route-source-');
  const member = async (source: string): Promise<string | null | undefined> => (await explainRoute(parts, { host: 'example.org', port: 443, source })).member;
  // A dual-stack listener reports an IPv4 client as ::ffff:a.b.c.d, and the gateway unmaps it;
  // Node writes IPv6 peers in RFC 5952's form.
  for (let i = 1; i <= 10; i++) {
    assert.equal(await member(`::ffff:10.0.0.${i}`), await member(`10.0.0.${i}`), `10.0.0.${i}`);
    assert.equal(await member(`2001:DB8:0:0::${i}`), await member(`2001:db8::${i}`), `2001:db8::${i}`);
  }
});

test('route: an IPv6 destination names the member a request gets, never a socks4 member that cannot be asked for it', async (t) => {
  const { path, parts } = await routeParts(t, `
upstreams:
  mixed:
    type: pool
    strategy: failover
    max_attempts: 1
    members: ["socks4://127.0.0.20:1080", "http://127.0.0.21:3128"]
default: mixed
`);
  assert.equal((await explainRoute(parts, { host: '[2001:db8::1]', port: 443 })).member, 'http://127.0.0.21:3128');
  assert.equal((await explainRoute(parts, { host: '::ffff:192.0.2.1', port: 443 })).member, 'socks4://127.0.0.20:1080');
  assert.equal((await explainRoute(parts, { host: 'example.org', port: 443 })).member, 'socks4://127.0.0.20:1080');
  const out = await runCli(['route', '2001:db8::1', '443', '--config', path]);
  assert.equal(out.code, 0, out.stderr);
  assert.match(out.stdout, /^rule=default action=mixed member=http:\/\/127\.0\.0\.21:3128 /);
});
