// The admin API as an operator uses it: real HTTP requests to the admin listener of a
// gateway started here, real SOCKS clients, real microsocks pool members.
import { test, type TestContext } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { adminClient, type AdminAnswer } from '../helpers/admin.js';
import { closedWithin, socksConnect, startEchoServer, startGateway, startHttpServer, waitForLogMessage } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { listenTracked } from '../helpers/servers.js';
import { readAll, startDestination, startMicrosocks } from '../helpers/upstreams.js';

const TOKEN = 'admin-token-7f3a';
const ADMIN = { host: '127.0.0.1', port: 0, api_token: TOKEN };

/** A SOCKS5 tunnel to `echoPort` that has echoed "ping", and its entry in /api/connections. */
async function openTunnel(t: TestContext, gwPort: number, api: ReturnType<typeof adminClient>, echoPort: number): Promise<{ socket: Socket; conn: Record<string, unknown> }> {
  const { socket } = await socksConnect(gwPort, { host: '127.0.0.1', port: echoPort }, 3_000);
  t.after(() => socket.destroy());
  socket.write('ping');
  await once(socket, 'data');
  const list = (await api.request('GET', '/api/connections')).json as Array<Record<string, unknown>>;
  const conn = list.find((c) => c.destination === `127.0.0.1:${echoPort}`);
  assert.ok(conn, JSON.stringify(list));
  return { socket, conn };
}

test('without api_token there is no /api and no status page; with it, a missing or wrong token gets 401', async (t) => {
  const plain = await startGateway({ metrics: { host: '127.0.0.1', port: 0 } });
  t.after(() => plain.close());
  const none = adminClient(plain.gw, TOKEN);
  assert.equal((await none.request('GET', '/api/connections')).status, 404);
  assert.equal((await none.request('GET', '/api/openapi.json')).status, 404);
  assert.equal((await none.request('GET', '/')).status, 404);
  assert.equal((await none.request('GET', '/metrics')).status, 200, 'metrics are still served');
  assert.deepEqual([(await none.request('POST', '/nope')).status, (await none.request('POST', '/metrics')).status], [404, 405]);
  assert.equal((await none.request('POST', '/readyz')).headers.get('allow'), 'GET, HEAD', 'a 405 names the methods the path takes');
  assert.equal((await none.request('HEAD', '/healthz')).status, 200);

  const gw = await startGateway({ metrics: ADMIN });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  for (const token of [null, 'wrong', `${TOKEN}x`, TOKEN.slice(0, -1), '']) {
    const r = await api.request('GET', '/api/connections', { token });
    assert.equal(r.status, 401, `token ${String(token)}`);
    assert.match(r.headers.get('www-authenticate') ?? '', /^Bearer/);
    assert.deepEqual(Object.keys(r.json as object), ['error']);
  }
  const basic = await fetch(`${api.base}/api/upstreams`, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
  assert.equal(basic.status, 401);
  const ok = await api.request('GET', '/api/connections');
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.json, []);
  assert.equal((await api.request('POST', '/api/reload', { token: null })).status, 401, 'no side effect without the token');
});

test('a killed connection ends for its client, on both sockets, and its access-log line is written', async (t) => {
  // An echo destination that reports when its side of the relay is closed.
  let destClosed!: Promise<unknown>;
  const srv = createServer((s) => {
    s.on('error', () => {});
    destClosed = once(s, 'close');
    s.pipe(s);
  });
  const echo = await listenTracked(srv, '127.0.0.1');
  t.after(() => echo.close());
  const gw = await startGateway({ metrics: ADMIN, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const { socket, conn } = await openTunnel(t, gw.port, api, echo.port);
  assert.equal(conn.command, 'connect');
  assert.equal(conn.protocol, 'socks5');
  assert.equal(conn.rule, 'lo');
  assert.equal(conn.outbound, 'direct');
  assert.equal(conn.client, `127.0.0.1:${socket.localPort}`);
  assert.ok((conn.bytes as { up: number }).up >= 4, JSON.stringify(conn));
  assert.equal(typeof conn.age, 'number');

  // The chart's source counts what the open connection moved so far, before it ends.
  const stats = (await api.request('GET', '/api/stats')).json as { connections: { open: number }; bytes: { up: number }; rules: Array<{ rule: string; up: number }> };
  assert.equal(stats.connections.open, 1);
  assert.ok(stats.bytes.up >= 4 && stats.rules.find((r) => r.rule === 'lo')!.up >= 4, JSON.stringify(stats));

  const killed = await api.request('DELETE', `/api/connections/${String(conn.id)}`);
  assert.equal(killed.status, 200, killed.text);
  assert.ok(await closedWithin(socket, 5_000), 'the client sees the end');
  await Promise.race([destClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('the destination side stayed open')), 5_000))]);
  const line = await gw.accessLog((l) => l.dest === `127.0.0.1:${echo.port}`, 5_000);
  assert.equal(line?.error, 'killed');
  assert.equal((await api.request('DELETE', `/api/connections/${String(conn.id)}`)).status, 404);
  assert.equal((await api.request('DELETE', '/api/connections/nope')).status, 400);
  assert.deepEqual((await api.request('GET', '/api/connections')).json, []);
});

test('a forwarded HTTP request killed before its response: its line says killed, with no status the client never got', async (t) => {
  // An origin that reads the request and never answers.
  const origin = await listenTracked(createServer((s) => s.on('error', () => {}).resume()), '127.0.0.1');
  t.after(() => origin.close());
  const gw = await startGateway({ metrics: ADMIN, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const client = createConnection({ host: '127.0.0.1', port: gw.port });
  t.after(() => client.destroy());
  client.on('error', () => {});
  await once(client, 'connect');
  const dest = `127.0.0.1:${origin.port}`;
  client.write(`GET http://${dest}/slow HTTP/1.1\r\nHost: ${dest}\r\n\r\n`);
  let open: { id: unknown } | undefined;
  for (let i = 0; i < 100 && open === undefined; i++) {
    open = ((await api.request('GET', '/api/connections')).json as Array<{ id: unknown; destination?: string }>).find((c) => c.destination === dest);
    if (open === undefined) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(open, 'the request shows among the open connections');
  assert.equal((await api.request('DELETE', `/api/connections/${String(open.id)}`)).status, 200);
  assert.ok(await closedWithin(client, 5_000), 'the client sees the end');
  const line = await gw.accessLog((l) => l.dest === dest, 5_000);
  assert.equal(line?.error, 'killed');
  assert.equal(line?.status, undefined, 'no 502 went out: the client was cut');
});

test('an open connection through an upstream shows the bytes it relayed, not the upstream handshake', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const up = await startMicrosocks({ host: '127.0.0.63' });
  t.after(() => up.close());
  const gw = await startGateway({ metrics: ADMIN, upstreams: { up: { type: 'socks5', host: up.host, port: up.port } }, default: 'up' });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const { socket, conn } = await openTunnel(t, gw.port, api, echo.port);
  assert.deepEqual(conn.bytes, { up: 4, down: 4 }, JSON.stringify(conn));
  const stats = (await api.request('GET', '/api/stats')).json as { bytes: { up: number; down: number } };
  assert.deepEqual(stats.bytes, { up: 4, down: 4 }, JSON.stringify(stats));
  socket.destroy();
  const line = await gw.accessLog((l) => l.dest === `127.0.0.1:${echo.port}`, 5_000);
  assert.deepEqual([line?.up, line?.down], [4, 4], 'the access log agrees');
});

test('an HTTP keep-alive connection between requests: /api/stats counts its last request once, as /metrics and the access log do', async (t) => {
  const origin = await startHttpServer();
  t.after(() => origin.close());
  const gw = await startGateway({ metrics: ADMIN, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const client = createConnection({ host: '127.0.0.1', port: gw.port });
  t.after(() => client.destroy());
  client.on('error', () => {});
  await once(client, 'connect');
  const dest = `127.0.0.1:${origin.port}`;
  client.write(`GET http://${dest}/a HTTP/1.1\r\nHost: ${dest}\r\n\r\n`);
  const line = await gw.accessLog((l) => l.dest === dest, 5_000);
  assert.equal(line?.status, 200);
  // The client keeps the connection open for its next request.
  const open = (await api.request('GET', '/api/connections')).json as unknown[];
  assert.equal(open.length, 1, JSON.stringify(open));
  const stats = (await api.request('GET', '/api/stats')).json as { bytes: { up: number; down: number }; rules: Array<{ rule: string; up: number; down: number }> };
  const logged = { up: line.up, down: line.down };
  assert.deepEqual(stats.bytes, logged, JSON.stringify(stats));
  const lo = stats.rules.find((r) => r.rule === 'lo');
  assert.deepEqual({ up: lo?.up, down: lo?.down }, logged, JSON.stringify(stats));
  assert.deepEqual({ up: await metricValue(gw.gw, 'socksgate_bytes_total', { direction: 'up' }), down: await metricValue(gw.gw, 'socksgate_bytes_total', { direction: 'down' }) }, logged);
});

test('a ban takes a member out of rotation for new requests at once, an unban brings it back; no password in any answer', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const a = await startMicrosocks({ host: '127.0.0.61', user: 'pooluser', pass: 'member-secret-1' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.62' });
  t.after(() => b.close());
  const gw = await startGateway({
    metrics: ADMIN,
    auth: { users: [{ username: 'alice', password: 'user-secret-3' }] },
    upstreams: {
      corp: { type: 'socks5', host: '127.0.0.9', port: 1080, username: 'corp', password: 'upstream-secret-2' },
      crawl: { type: 'pool', strategy: 'round-robin', members: [`socks5://pooluser:member-secret-1@127.0.0.61:${a.port}`, `socks5://127.0.0.62:${b.port}`] },
    },
    rules: [{ name: 'crawler', users: ['alice'], action: 'crawl' }],
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const answers: AdminAnswer[] = [];
  const call = async (method: string, path: string, body?: unknown): Promise<AdminAnswer> => {
    const r = await api.request(method, path, { body });
    answers.push(r);
    return r;
  };
  const through = (): Promise<string> =>
    // Which member carried it: the destination greets the peer address (each member binds its own).
    socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 5_000, { userId: 'alice', password: 'user-secret-3' }).then(async ({ socket }) =>
      (await readAll(socket)).trim().replace(/^hello /, ''),
    );
  const some = async (n: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) seen.add(await through());
    return seen;
  };
  assert.deepEqual(await some(4), new Set(['127.0.0.61', '127.0.0.62']), 'round-robin uses both');

  const before = (await call('GET', '/api/upstreams')).json as { pools: Array<{ name: string; members: Array<{ name: string; banned_until: string | null }> }>; upstreams: Array<{ name: string }> };
  assert.deepEqual(before.upstreams.map((u) => u.name), ['corp']);
  const members = before.pools.find((p) => p.name === 'crawl')!.members;
  assert.equal(members.length, 2);
  const memberA = members.find((m) => m.name.includes('127.0.0.61'))!;
  assert.equal(memberA.banned_until, null);
  const banPath = `/api/upstreams/crawl/members/${encodeURIComponent(memberA.name)}/ban`;

  const banned = await call('POST', banPath, { for: '10m' });
  assert.equal(banned.status, 200, banned.text);
  const until = Date.parse((banned.json as { banned_until: string }).banned_until);
  assert.ok(until > Date.now() + 9 * 60_000 && until <= Date.now() + 10 * 60_000, banned.text);
  assert.deepEqual(await some(4), new Set(['127.0.0.62']), 'no new request lands on the banned member');
  const shown = (await call('GET', '/api/upstreams')).json as typeof before;
  assert.notEqual(shown.pools[0]!.members.find((m) => m.name === memberA.name)!.banned_until, null);
  const route = await call('GET', `/api/route?host=127.0.0.1&port=${dest.port}&user=alice`);
  assert.equal(route.status, 200, route.text);
  assert.deepEqual(route.json, { rule: 'crawler', action: 'crawl', index: 0, member: `socks5://127.0.0.62:${b.port}` });

  const lifted = await call('DELETE', banPath);
  assert.equal(lifted.status, 200, lifted.text);
  assert.equal((lifted.json as { banned_until: unknown }).banned_until, null);
  assert.deepEqual(await some(4), new Set(['127.0.0.61', '127.0.0.62']), 'back in rotation');

  assert.equal((await call('POST', banPath, { for: 'ten minutes' })).status, 400);
  assert.equal((await call('POST', banPath, {})).status, 400);
  assert.equal((await call('POST', '/api/upstreams/crawl/members/socks5%3A%2F%2F127.0.0.99%3A1/ban', { for: '1m' })).status, 404);
  assert.equal((await call('POST', `/api/upstreams/corp/members/${encodeURIComponent(memberA.name)}/ban`, { for: '1m' })).status, 404);
  assert.equal((await call('GET', '/api/route?host=example.org')).status, 400, 'port is required');
  assert.equal((await call('GET', '/api/route?host=example.org&port=80&source=nope')).status, 400);
  // A login the gateway refuses gets no route: it would show one no request takes.
  // The metadata address: a loopback gateway's default egress.deny refuses it to `direct`.
  const metadata = await call('GET', '/api/route?host=169.254.169.254&port=80');
  assert.deepEqual(metadata.json, { rule: 'default', action: 'direct', index: -1, egress: 'denied' });
  const stranger = await call('GET', '/api/route?host=example.org&port=80&user=bob-country-de');
  assert.equal(stranger.status, 400, stranger.text);
  assert.match(stranger.text, /not in auth\.users/);
  // Letters and digits, but no duration: the answer names what a lifetime must be.
  const lifetime = await call('GET', '/api/route?host=example.org&port=80&user=alice-session-K1-lifetime-1d');
  assert.equal(lifetime.status, 400, lifetime.text);
  assert.match(lifetime.text, /lifetime a duration/);
  // A host every request is refused for before any rule (0x04, HTTP 400) has no decision to show.
  for (const host of ['127.1', 'example.org..', 'a%20b.org']) {
    const refused = await call('GET', `/api/route?host=${host}&port=80`);
    assert.equal(refused.status, 400, host);
    assert.match(refused.text, /is not an IP address or a hostname/, host);
  }
  // A name in Unicode is asked about as its A-label, the form a request naming it is routed in.
  const idn = await call('GET', '/api/route?host=b%C3%BCcher.example&port=80');
  assert.equal(idn.status, 200, idn.text);
  await call('GET', '/api/connections');
  await call('GET', '/api/stats');
  await call('GET', '/api/openapi.json');
  const page = await fetch(`${api.base}/`);
  const pageTexts = [await page.text()];
  for (const asset of ['/status.js', '/status.css']) pageTexts.push(await (await fetch(api.base + asset)).text());
  for (const text of [...answers.map((r) => r.text), ...pageTexts]) {
    for (const secret of ['member-secret-1', 'upstream-secret-2', 'user-secret-3', TOKEN]) assert.ok(!text.includes(secret), `${secret} in ${text}`);
  }
});

test('a ban or unban naming a member by the URL the config gives it bans that member, named as listed, without repeating a secret', async (t) => {
  const gw = await startGateway({
    metrics: ADMIN,
    upstreams: { crawl: { type: 'pool', members: ['socks5://pooluser:member-secret-4@127.0.0.61:1080', 'socks5://APIKEY-secret-5@127.0.0.62:1080'] } },
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const listed = ((await api.request('GET', '/api/upstreams')).json as { pools: Array<{ members: Array<{ name: string }> }> }).pools[0]!.members.map((m) => m.name);
  for (const [url, name] of [
    ['socks5://pooluser:member-secret-4@127.0.0.61:1080', listed[0]!],
    ['socks5://APIKEY-secret-5@127.0.0.62:1080', listed[1]!],
  ] as const) {
    const path = `/api/upstreams/crawl/members/${encodeURIComponent(url)}/ban`;
    for (const [method, body, banned] of [['POST', { for: '10m' }, true], ['DELETE', undefined, false]] as const) {
      const r = await api.request(method, path, { body });
      assert.equal(r.status, 200, r.text);
      for (const secret of ['member-secret-4', 'APIKEY-secret-5']) assert.ok(!r.text.includes(secret), r.text);
      const answer = r.json as { member: string; banned_until: string | null };
      assert.equal(answer.member, name);
      assert.equal(answer.banned_until !== null, banned);
    }
  }
});

test('a ban naming no member is a 404 that says how members are named, and does not repeat a secret', async (t) => {
  const gw = await startGateway({
    metrics: ADMIN,
    upstreams: { crawl: { type: 'pool', members: ['socks5://APIKEY-secret-5@127.0.0.62:1080'] } },
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const r = await api.request('POST', `/api/upstreams/crawl/members/${encodeURIComponent('socks5://OTHERKEY-secret-6@127.0.0.62:1080')}/ban`, { body: { for: '10m' } });
  assert.equal(r.status, 404, r.text);
  assert.ok(!r.text.includes('secret-6'), r.text);
  assert.equal((r.json as { error: string }).error, 'pool "crawl" has no member "socks5://…@127.0.0.62:1080": members are addressed by their name as /api/upstreams lists it');
});

test('a banned member reads healthy: false (out of rotation) in /api/upstreams and socksgate_upstream_healthy until the ban is lifted', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const a = await startMicrosocks({ host: '127.0.0.61' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.62' });
  t.after(() => b.close());
  const memberA = `socks5://127.0.0.61:${a.port}`;
  const memberB = `socks5://127.0.0.62:${b.port}`;
  const gw = await startGateway({ metrics: ADMIN, upstreams: { crawl: { type: 'pool', strategy: 'round-robin', members: [memberA, memberB] } }, default: 'crawl' });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  type Member = { name: string; healthy: boolean; banned_until: string | null };
  const view = async (): Promise<Array<[string, boolean, boolean]>> => {
    const body = (await api.request('GET', '/api/upstreams')).json as { pools: Array<{ members: Member[] }> };
    return body.pools[0]!.members.map((m) => [m.name, m.healthy, m.banned_until !== null]);
  };
  const healthyGauge = async (member: string): Promise<string | undefined> => {
    const text = await (await fetch(`${api.base}/metrics`)).text();
    return text.split('\n').find((l) => l.startsWith(`socksgate_upstream_healthy{upstream="${member}",pool="crawl"}`))?.split(' ').pop();
  };
  const peers = async (n: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < n; i++) {
      const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 5_000);
      seen.add((await readAll(socket)).trim().replace(/^hello /, ''));
    }
    return seen;
  };
  const banPath = `/api/upstreams/crawl/members/${encodeURIComponent(memberA)}/ban`;

  assert.equal((await api.request('POST', banPath, { body: { for: '10m' } })).status, 200);
  assert.deepEqual(await view(), [[memberA, false, true], [memberB, true, false]], 'banned: not healthy, with its end');
  assert.deepEqual([await healthyGauge(memberA), await healthyGauge(memberB)], ['0', '1']);
  assert.deepEqual(await peers(4), new Set(['127.0.0.62']), 'traffic avoids the banned member');

  assert.equal((await api.request('DELETE', banPath)).status, 200);
  assert.deepEqual(await view(), [[memberA, true, false], [memberB, true, false]], 'healthy again once the ban is lifted');
  assert.deepEqual([await healthyGauge(memberA), await healthyGauge(memberB)], ['1', '1']);
  assert.deepEqual(await peers(4), new Set(['127.0.0.61', '127.0.0.62']));
});

test('an upstream a rule names directly shows its connect latency, as a pool member does: /api/upstreams and socksgate_upstream_latency_seconds', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const up = await startMicrosocks({ host: '127.0.0.63' });
  t.after(() => up.close());
  const gw = await startGateway({ metrics: ADMIN, upstreams: { corp: { type: 'socks5', host: '127.0.0.63', port: up.port } }, default: 'corp' });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const corp = async (): Promise<{ attempts: number; latency_ms: number | null }> =>
    ((await api.request('GET', '/api/upstreams')).json as { upstreams: Array<{ name: string; attempts: number; latency_ms: number | null }> }).upstreams.find((u) => u.name === 'corp')!;
  assert.equal((await corp()).latency_ms, null, 'nothing measured yet');
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 5_000);
  await readAll(socket);
  const seen = await corp();
  assert.equal(seen.attempts, 1);
  assert.equal(typeof seen.latency_ms, 'number', JSON.stringify(seen));
  assert.ok(seen.latency_ms! > 0 && seen.latency_ms! < 5_000, JSON.stringify(seen));
  const text = await (await fetch(`${api.base}/metrics`)).text();
  assert.match(text, /^socksgate_upstream_latency_seconds\{upstream="corp",pool=""\} [0-9.e-]+$/m);
});

const BASE_CONFIG = { listen: [{ host: '127.0.0.1', port: 0 }], metrics: ADMIN, limits: { drain_timeout: '5s' } };

test('POST /api/reload applies a valid file, answers FILE:LINE:COL for a broken one and keeps the old routing', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = join(await tempDir('api'), 'socksgate.yaml');
  await writeFile(path, stringify(BASE_CONFIG));
  const gw = await startGateway(BASE_CONFIG, { source: path });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const works = async (): Promise<boolean> => {
    try {
      (await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000)).socket.destroy();
      return true;
    } catch (err) {
      assert.match(String(err), /NotAllowed/);
      return false;
    }
  };
  assert.equal(await works(), true);

  await writeFile(path, `${stringify(BASE_CONFIG)}rules:\n  - { name: broken, action: nowhere }\n`);
  const rejected = await api.request('POST', '/api/reload');
  assert.equal(rejected.status, 422, rejected.text);
  const outcome = rejected.json as { result: string; errors: string[] };
  assert.equal(outcome.result, 'rejected');
  assert.match(outcome.errors.join('\n'), /socksgate\.yaml:\d+:\d+: .*nowhere/);
  assert.equal(await works(), true, 'the old routing stays');
  const routeNow = (await api.request('GET', `/api/route?host=127.0.0.1&port=${echo.port}`)).json;
  assert.deepEqual(routeNow, { rule: 'default', action: 'direct', index: -1 });

  await writeFile(path, `${stringify(BASE_CONFIG)}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  const applied = await api.request('POST', '/api/reload');
  assert.equal(applied.status, 200, applied.text);
  assert.deepEqual(applied.json, { result: 'ok', config: path });
  assert.equal(await works(), false, 'the new routing applies to new requests');

  const lines = gw.logs.filter((l) => l.trigger === 'api');
  assert.deepEqual(lines.map((l) => [l.msg, l.result]), [
    ['reload rejected; keeping the running configuration', 'rejected'],
    ['configuration reloaded', 'ok'],
  ]);
  const metrics = await (await fetch(`${api.base}/metrics`)).text();
  assert.match(metrics, /^socksgate_reloads_total\{result="rejected"\} 1$/m);
  assert.match(metrics, /^socksgate_reloads_total\{result="ok"\} 1$/m);
});

test('/readyz is 200 while serving and 503 while draining; /healthz stays 200', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0 }, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const admin = adminClient(gw.gw);
  assert.equal((await admin.request('GET', '/readyz')).status, 200);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000);
  t.after(() => socket.destroy());
  const closing = gw.gw.close(10_000); // drains: the open connection holds it
  const draining = await admin.request('GET', '/readyz');
  assert.equal(draining.status, 503);
  assert.equal((await admin.request('GET', '/healthz')).status, 200);
  socket.end();
  await closing;
});

test('an /api request is answered by its first failing check: token, route, path and query, then the body', async (t) => {
  const gw = await startGateway({ metrics: ADMIN });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const raw = (method: string, path: string, body: string, type: string, token: string | null = TOKEN): Promise<Response> =>
    fetch(`${api.base}${path}`, {
      method,
      headers: { 'content-type': type, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body,
      signal: AbortSignal.timeout(10_000),
    });
  assert.equal((await raw('POST', '/api/nope', 'x', 'text/plain', null)).status, 401, 'the token first');
  assert.equal((await raw('POST', '/api/nope', 'x', 'text/plain')).status, 404, 'an unknown route before a body of the wrong type');
  const wrongMethod = await raw('PUT', '/api/connections', 'x'.repeat(64 * 1024), 'application/json');
  assert.equal(wrongMethod.status, 405, 'a method the route lacks before a body too large');
  assert.equal(wrongMethod.headers.get('allow'), 'GET, HEAD');
  assert.match(await (await raw('DELETE', '/api/connections/abc', '{', 'application/json')).text(), /path/, 'a bad path before bad JSON');
  assert.equal((await raw('POST', '/api/reload', '{', 'application/json')).status, 400, 'then the body');
  assert.equal((await raw('POST', '/api/reload', 'x', 'text/plain')).status, 415);
});

test('an api_token with spaces and non-ASCII letters works as written; a token cut at its first space does not', async (t) => {
  const token = 'correct horse battery staple é';
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: token } });
  t.after(() => gw.close());
  const base = adminClient(gw.gw, token).base;
  // fetch takes latin1 header values only: the UTF-8 bytes go as they are, as curl sends them.
  const header = (text: string): string => Buffer.from(`Bearer ${text}`, 'utf8').toString('latin1');
  assert.equal((await fetch(`${base}/api/connections`, { headers: { authorization: header(token) } })).status, 200);
  assert.equal((await fetch(`${base}/api/connections`, { headers: { authorization: header('correct') } })).status, 401);
  assert.equal((await fetch(`${base}/api/connections`, { headers: { authorization: header(`${token} x`) } })).status, 401);
});

test('a wrong token with a long run of spaces inside is refused without stalling the proxy: bytes keep flowing meanwhile', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ metrics: ADMIN });
  t.after(() => gw.close());
  const adminPort = gw.gw.adminAddress!.port;
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000);
  t.after(() => socket.destroy());
  // Anyone who can reach the listener may send this: a head near node's 16 KiB limit, three
  // pipelined on each of 30 connections, all there before the bytes to relay.
  const request = `GET /api/connections HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer x${' '.repeat(15_000)}y\r\n\r\n`;
  const clients: Socket[] = [];
  for (let i = 0; i < 30; i++) {
    const c = createConnection({ host: '127.0.0.1', port: adminPort });
    c.on('error', () => {});
    t.after(() => c.destroy());
    await once(c, 'connect');
    clients.push(c);
  }
  let refused = 0;
  for (const c of clients) {
    c.on('data', (chunk: Buffer) => (refused += (chunk.toString('latin1').match(/HTTP\/1\.1 401 /g) ?? []).length));
    c.write(request.repeat(3));
  }
  socket.write('still relaying');
  const echoed = await Promise.race([
    once(socket, 'data').then(([c]) => (c as Buffer).toString()),
    new Promise<string>((r) => setTimeout(() => r('no echo within 5 s'), 5_000).unref()),
  ]);
  assert.equal(echoed, 'still relaying');
  for (let waited = 0; waited < 30_000 && refused < 90; waited += 50) await new Promise((r) => setTimeout(r, 50));
  assert.equal(refused, 90);
});

test('an api_token with whitespace around it (a secret file\'s newline) is sent without it and accepted', async (t) => {
  for (const token of ['admin-token-from-a-file-0001\n', '  padded-admin-token-0002  ']) {
    const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, api_token: token } });
    t.after(() => gw.close());
    const api = adminClient(gw.gw, token.trim());
    assert.equal((await api.request('GET', '/api/connections')).status, 200, JSON.stringify(token));
    assert.equal((await api.request('GET', '/api/connections', { token: `${token.trim()}x` })).status, 401);
    assert.equal((await api.request('GET', '/api/connections', { token: token.trim().slice(1) })).status, 401);
  }
});

test('an absolute-form admin request no URL parser takes is a 400, not an unexpected error', async (t) => {
  const gw = await startGateway({ metrics: ADMIN });
  t.after(() => gw.close());
  const addr = gw.gw.adminAddress!;
  const s = createConnection({ host: '127.0.0.1', port: addr.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  s.write('GET http://[zz/api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  const answer = await readAll(s);
  assert.match(answer, /^HTTP\/1\.1 400 /);
  const unexpected = await gw.gw.metrics.registry.getSingleMetric('socksgate_unexpected_errors_total')?.get();
  assert.equal(unexpected?.values[0]?.value ?? 0, 0);
  assert.equal((await adminClient(gw.gw, TOKEN).request('GET', '/healthz')).status, 200);
});

test('a client that leaves in the middle of an /api request body is no unexpected error: nothing is logged at error level or counted', async (t) => {
  const gw = await startGateway({ metrics: ADMIN }, { logLevel: 'debug' });
  t.after(() => gw.close());
  const addr = gw.gw.adminAddress!;
  const s = createConnection({ host: '127.0.0.1', port: addr.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  // The 100 Continue says the head is read and the request is being served: its body awaited.
  s.write(`POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`);
  const [interim] = (await once(s, 'data')) as [Buffer];
  assert.match(interim.toString('latin1'), /^HTTP\/1\.1 100 /);
  s.write('{');
  s.resetAndDestroy();
  assert.ok(await waitForLogMessage(gw.logs, 'admin request: the client left before its request was whole'), 'the departure noted');
  assert.deepEqual(gw.logs.filter((l) => l['msg'] === 'admin request failed'), [], 'no error line');
  const unexpected = await gw.gw.metrics.registry.getSingleMetric('socksgate_unexpected_errors_total')?.get();
  assert.equal(unexpected?.values[0]?.value ?? 0, 0, 'not counted as an unexpected error');
  assert.equal((await adminClient(gw.gw, TOKEN).request('GET', '/healthz')).status, 200);
});

test('HEAD on an /api route that takes GET answers as GET does, without the body', async (t) => {
  const gw = await startGateway({ metrics: ADMIN });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  for (const path of ['/api/connections', '/api/stats', '/api/openapi.json', '/api/route?host=127.0.0.1&port=80']) {
    const get = await api.request('GET', path);
    const head = await api.request('HEAD', path);
    assert.equal(head.status, 200, `HEAD ${path}: ${head.status}`);
    assert.equal(head.headers.get('content-type'), get.headers.get('content-type'));
    assert.equal(head.text, '');
  }
  assert.equal((await api.request('HEAD', '/api/connections', { token: null })).status, 401);
  assert.equal((await api.request('HEAD', '/api/route?host=127.0.0.1')).status, 400, 'the query is checked as for GET');
  const reload = await api.request('HEAD', '/api/reload');
  assert.equal(reload.status, 405);
  assert.equal(reload.headers.get('allow'), 'POST');
});

test('a web page elsewhere cannot use the API: no CORS grant, a simple cross-origin POST is 401 and does nothing, no token in the query', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ metrics: ADMIN, rules: [{ name: 'lo', cidrs: ['127.0.0.0/8'], action: 'direct' }] });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const { socket, conn } = await openTunnel(t, gw.port, api, echo.port);
  const origin = { origin: 'http://attacker.example' };
  // A preflight (DELETE, or any Authorization header) gets no Access-Control-Allow-Origin: the browser stops there.
  const preflight = await fetch(`${api.base}/api/connections/${String(conn.id)}`, {
    method: 'OPTIONS',
    headers: { ...origin, 'access-control-request-method': 'DELETE', 'access-control-request-headers': 'authorization' },
  });
  assert.equal(preflight.headers.get('access-control-allow-origin'), null);
  // What a form or a no-cors fetch can send without asking: a text/plain POST, no Authorization.
  for (const path of ['/api/reload', `/api/upstreams/crawl/members/x/ban`, `/api/connections/${String(conn.id)}`]) {
    const r = await fetch(`${api.base}${path}`, { method: 'POST', headers: { ...origin, 'content-type': 'text/plain' }, body: '{"for":"1h"}' });
    assert.equal(r.status, 401, path);
    assert.equal(r.headers.get('access-control-allow-origin'), null, path);
  }
  for (const query of [`token=${TOKEN}`, `access_token=${TOKEN}`, `api_token=${TOKEN}`]) {
    assert.equal((await api.request('GET', `/api/connections?${query}`, { token: null })).status, 401, query);
  }
  assert.equal(socket.destroyed, false, 'the connection is still open');
  const metrics = (await api.request('GET', '/metrics')).text;
  assert.match(metrics, /^socksgate_reloads_total\{result="ok"\} 0$/m, 'no reload ran');
  assert.deepEqual(gw.logs.filter((l) => l.trigger === 'api'), []);
});

test('a client that leaves in the middle of a ban by the member URL with its password: the password is not logged', async (t) => {
  const gw = await startGateway({ metrics: ADMIN }, { logLevel: 'debug' });
  t.after(() => gw.close());
  const addr = gw.gw.adminAddress!;
  const s = createConnection({ host: '127.0.0.1', port: addr.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  const member = encodeURIComponent('socks5://user:pw-never-logged@127.0.0.1:1080');
  s.write(`POST /api/upstreams/pool/members/${member}/ban HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n`);
  const [interim] = (await once(s, 'data')) as [Buffer];
  assert.match(interim.toString('latin1'), /^HTTP\/1\.1 100 /);
  s.write('{');
  s.resetAndDestroy();
  assert.ok(await waitForLogMessage(gw.logs, 'admin request: the client left before its request was whole'), 'the departure noted');
  const lines = JSON.stringify(gw.logs);
  assert.ok(!lines.includes('pw-never-logged'), lines);
  assert.match(lines, /members\/socks5%3A%2F%2Fuser%40127\.0\.0\.1%3A1080\/ban/, 'the member still named');
});
