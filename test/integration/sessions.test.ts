// Crawler sessions through real gateways and real microsocks members on 127.0.0.x: sticky
// sessions agree across gateway instances, lifetimes move a session then hold it, tag
// filters pick members, weights give shares (PRODUCT.md "Crawler sessions", "Pool strategies").
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { fnv1a32, sessionPeriod } from '../../src/outbound/strategies.js';
import { parseUsername, stickyKey } from '../../src/protocol/username.js';
import { curl } from '../helpers/curl.js';
import { startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { poolDestination, poolGateway, poolOf, throughPool } from '../helpers/pool.js';
import { startMicrosocks, type RunningUpstream } from '../helpers/upstreams.js';

async function members(t: TestContext, hosts: string[]): Promise<RunningUpstream[]> {
  const ups = await Promise.all(hosts.map((host) => startMicrosocks({ host })));
  for (const u of ups) t.after(() => u.close());
  return ups;
}

const url = (u: RunningUpstream): string => `socks5://${u.host}:${u.port}`;

/** The loopback address of the member the pool would pick for `username` now. */
function expected(gw: TestGateway, username: string): string | undefined {
  const parsed = parseUsername(username)!;
  const name = poolOf(gw).pick(stickyKey(parsed.user, parsed.params['session'], '127.0.0.1'), parsed.params);
  return name === undefined ? undefined : new URL(name).hostname;
}

test('sticky: two gateway instances send each session key to the same member, also per lifetime period', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.111', '127.0.0.112', '127.0.0.113']);
  const a = await poolGateway(t, { strategy: 'sticky', members: ups.map(url) });
  const b = await poolGateway(t, { strategy: 'sticky', members: [...ups].reverse().map(url) });
  const used = new Set<string>();
  for (let k = 0; k < 12; k++) {
    for (const user of [`alice-session-s${k}`, `alice-session-s${k}-lifetime-1h`]) {
      const first = await throughPool(a, d, user);
      assert.equal(typeof first, 'string', `${user}: ${first}`);
      assert.equal(await throughPool(b, d, user), first, `${user} on the second instance`);
      assert.equal(await throughPool(a, d, user), first, `${user} again`);
      if (!user.includes('lifetime')) used.add(first as string);
    }
  }
  assert.ok(used.size > 1, 'twelve session keys all on one member');
});

test("sticky: a session is its user's own: another user naming the same session, or naming a user as its session, is not sent to that user's member by it", async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.131', '127.0.0.132', '127.0.0.133', '127.0.0.134']);
  const users = ['alice', 'bob', 'carol', 'dave', 'erin'].map((username) => ({ username, password: 'pw' }));
  const gw = await startGateway({ auth: { users }, upstreams: { crawl: { type: 'pool', strategy: 'sticky', members: ups.map(url) } }, default: 'crawl' });
  t.after(() => gw.close());
  /** The member that carried a CONNECT as `username`, checked against the pool's own pick for it. */
  const via = async (username: string): Promise<string> => {
    const peer = await throughPool(gw, d, username);
    assert.equal(typeof peer, 'string', `${username}: ${peer}`);
    assert.equal(peer, expected(gw, username), username);
    return peer as string;
  };
  // Twelve session names both alice and bob use: under a shared key every one would land alike.
  let alike = 0;
  for (let k = 0; k < 12; k++) if ((await via(`alice-session-s${k}`)) === (await via(`bob-session-s${k}`))) alike++;
  assert.ok(alike < 12, 'bob-session-K took the member of alice-session-K for every K');
  // Another user's name as the session: under a shared key, that user's own member every time.
  let taken = 0;
  for (const victim of ['bob', 'carol', 'dave', 'erin']) if ((await via(`alice-session-${victim}`)) === (await via(victim))) taken++;
  assert.ok(taken < 4, "alice-session-USER took USER's member for every USER");
});

test('lifetime: a session holds its member within a period and moves at its end, the same on both instances', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.114', '127.0.0.115', '127.0.0.116']);
  const a = await poolGateway(t, { strategy: 'sticky', members: ups.map(url) });
  const b = await poolGateway(t, { strategy: 'sticky', members: ups.map(url) });
  const lifetime = 3_000;
  const user = 'alice-session-moving-lifetime-3s';
  const keyHash = fnv1a32(stickyKey('alice', 'moving', '127.0.0.1'));
  const periodAt = (ms: number): number => sessionPeriod(keyHash, lifetime, ms);
  // The period a pick fell in is read off the clock before and after its CONNECT; a CONNECT
  // that spans a boundary says nothing and is left out, so no speed is assumed. Both instances
  // are asked in turn, paced, until one period was seen from its start to its end (the one
  // before it seen too) and the one after it from both instances.
  const seen = new Map<number, { a: string[]; b: string[] }>();
  const both = (p: number): boolean => (seen.get(p)?.a.length ?? 0) > 0 && (seen.get(p)?.b.length ?? 0) > 0;
  const whole = (): number | undefined => [...seen.keys()].find((p) => seen.has(p - 1) && both(p) && both(p + 1));
  for (let round = 0; round < 200 && whole() === undefined; round++) {
    for (const [side, gw] of [['a', a], ['b', b]] as const) {
      const before = periodAt(Date.now());
      const peer = await throughPool(gw, d, user);
      assert.equal(typeof peer, 'string', `${side}: ${peer}`);
      if (periodAt(Date.now()) !== before) continue;
      if (!seen.has(before)) seen.set(before, { a: [], b: [] });
      seen.get(before)![side].push(peer as string);
    }
    await sleep(100);
  }
  const p = whole();
  assert.ok(p !== undefined, `a whole period and the next seen from both instances: ${JSON.stringify([...seen])}`);
  for (const [period, { a: onA, b: onB }] of seen) {
    assert.equal(new Set([...onA, ...onB]).size, 1, `period ${period}: the session held one member on both instances: ${onA.join(',')} / ${onB.join(',')}`);
  }
  assert.notEqual(seen.get(p)!.a[0], seen.get(p + 1)!.a[0], 'at the end of its lifetime the session moved to another member');
});

test('lifetime: sessions K0..K49 move to their next member at moments spread over the lifetime, not together', { timeout: 90_000 }, async (t) => {
  // The README's crawler pins 50 keys K0..K49 with a lifetime; keys that differ in a character
  // must not share one instant to move (docs/load-balancers.md "Lifetimes from the clock").
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.184', '127.0.0.185', '127.0.0.186']);
  const gw = await poolGateway(t, { strategy: 'sticky', members: ups.map(url) });
  const lifetime = 10_000;
  const keys = Array.from({ length: 50 }, (_, i) => `K${i}`);
  const last = new Map<string, { at: number; peer: string }>();
  const movedAt = new Map<string, number>(); // midpoint of the two probes around a key's move
  const start = Date.now();
  // One lifetime and a bit: every key moves once (a period's end always moves it).
  while (Date.now() - start < lifetime + 1_500) {
    await Promise.all(
      keys.map(async (k) => {
        const peer = await throughPool(gw, d, `alice-session-${k}-lifetime-10s`);
        const at = Date.now();
        assert.equal(typeof peer, 'string', `${k}: ${peer}`);
        const before = last.get(k);
        if (before && before.peer !== peer && !movedAt.has(k)) movedAt.set(k, (before.at + at) / 2);
        last.set(k, { at, peer: peer as string });
      }),
    );
    await sleep(200);
  }
  assert.equal(movedAt.size, keys.length, `every key moved within a lifetime: ${keys.filter((k) => !movedAt.has(k)).join(',')} did not`);
  // Uniform moves put about 12 of 50 in a quarter of the lifetime; the most that any quarter holds:
  const times = [...movedAt.values()];
  const crowd = Math.max(...times.map((a) => times.filter((b) => b >= a && b < a + lifetime / 4).length));
  assert.ok(crowd <= 25, `${crowd} of 50 sessions moved within a quarter of their lifetime`);
});

test('tags: a filter lands only on members tagged so, or 0x04 "no member matches"', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.117', '127.0.0.118', '127.0.0.119', '127.0.0.120']);
  const gw = await poolGateway(t, {
    strategy: 'round-robin',
    members: [
      `${url(ups[0]!)}#country=de,city=berlin`,
      { url: url(ups[1]!), tags: { country: 'de' } },
      `${url(ups[2]!)}#country=us`,
      url(ups[3]!),
    ],
  });
  const de = new Set<string | number>();
  const berlin = new Set<string | number>();
  const any = new Set<string | number>();
  for (let i = 0; i < 8; i++) {
    de.add(await throughPool(gw, d, 'alice-country-de'));
    berlin.add(await throughPool(gw, d, 'alice-city-berlin-country-de'));
    any.add(await throughPool(gw, d, 'alice'));
  }
  assert.deepEqual([...de].sort(), ['127.0.0.117', '127.0.0.118']);
  assert.deepEqual([...berlin], ['127.0.0.117']);
  assert.equal(any.size, 4, 'no filter: every member');
  // A value in another case is the same tag: providers and crawlers write country codes both ways.
  const upper = new Set<string | number>();
  for (let i = 0; i < 4; i++) upper.add(await throughPool(gw, d, 'alice-country-DE-city-Berlin'));
  assert.deepEqual([...upper], ['127.0.0.117']);
  assert.equal(await throughPool(gw, d, 'alice-country-US'), '127.0.0.119');
  assert.equal(await throughPool(gw, d, 'alice-country-fr'), 0x04);
  assert.equal(await throughPool(gw, d, 'alice-country-us-city-berlin'), 0x04);
  const line = await gw.accessLog((l) => l['rep'] === 0x04);
  assert.match(String(line?.['error']), /no member matches/);
  assert.equal(await throughPool(gw, d, 'alice-country-d.e'), 1, 'a malformed parameter fails the login'); // `socks` reports a refused login as 0x01

  // HTTP Basic carries the same parameters: a filter lands on a tagged member, none matching is 502.
  const web = await startHttpServer();
  t.after(() => web.close());
  const proxy = `http://127.0.0.1:${gw.port}`;
  const berlinHttp = await curl(['-p', '-x', proxy, '--proxy-user', 'alice-city-berlin:pw', `${web.url}/x`]);
  assert.equal(berlinHttp.code, 0, berlinHttp.stderr);
  assert.match(berlinHttp.stdout, /from 127\.0\.0\.117/);
  const none = await curl(['-i', '-x', proxy, '--proxy-user', 'alice-country-fr:pw', `${web.url}/x`]);
  assert.match(none.stdout, /^HTTP\/1\.1 502 /);
  // The body says why, as the log does: not "host unreachable", which reads as the site being down.
  assert.match(none.stdout, /\r\n\r\nno member matches country=fr\n?$/);
  assert.ok(await gw.accessLog((l) => l['protocol'] === 'http' && l['status'] === 502 && /no member matches/.test(String(l['error']))));
  const malformed = await curl(['-i', '-x', proxy, '--proxy-user', 'alice-country:pw', `${web.url}/x`]);
  assert.match(malformed.stdout, /^HTTP\/1\.1 407 /);
});

test('tags: a parameter named like a property every object has (constructor, toString) is a filter no member matches', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.117']);
  const gw = await poolGateway(t, { strategy: 'round-robin', members: [`${url(ups[0]!)}#country=de`] });
  const keys = ['constructor', 'toString', '__proto__', 'hasOwnProperty'];
  for (const key of keys) assert.equal(await throughPool(gw, d, `alice-${key}-x`), 0x04, key);
  // Each refusal's line, once all are written: the reason is the filter, not a TypeError.
  assert.ok(await gw.accessLog(() => gw.logs.filter((l) => l['msg'] === 'session end' && l['rep'] === 0x04).length === keys.length));
  for (const l of gw.logs.filter((l) => l['msg'] === 'session end' && l['rep'] !== 0)) assert.match(String(l['error']), /no member matches/);
  assert.equal(await throughPool(gw, d, 'alice-country-de'), '127.0.0.117');
});

test('weights: sticky shares follow the weights, key by key as the hash says', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.121', '127.0.0.122']);
  const gw = await poolGateway(t, { strategy: 'sticky', members: [{ url: url(ups[0]!), weight: 1 }, { url: url(ups[1]!), weight: 3 }] });
  const n = 300;
  let heavy = 0;
  for (let k = 0; k < n; k++) {
    const user = `alice-session-w${k}`;
    const peer = await throughPool(gw, d, user);
    assert.equal(peer, expected(gw, user), user);
    if (peer === '127.0.0.122') heavy++;
  }
  // Expected 225 of 300 (p = 3/4, sd 7.5): six standard deviations either side.
  assert.ok(heavy > 180 && heavy < 270, `weight 3 of 4 got ${heavy} of ${n}`);
});

test('weights: random picks follow the weights within binomial bounds', async (t) => {
  const d = await poolDestination(t);
  const ups = await members(t, ['127.0.0.123', '127.0.0.124']);
  const gw = await poolGateway(t, { strategy: 'random', members: [{ url: url(ups[0]!), weight: 1 }, { url: url(ups[1]!), weight: 3 }] });
  const n = 300;
  let heavy = 0;
  for (let k = 0; k < n; k++) if ((await throughPool(gw, d, 'alice')) === '127.0.0.124') heavy++;
  // p = 3/4: 225 expected, sd 7.5; outside ±6 sd happens about once in 10^9 runs.
  assert.ok(heavy > 180 && heavy < 270, `weight 3 of 4 got ${heavy} of ${n}`);
});

test('access log: each line names the session its login gave, beside the user and the member that carried it', async (t) => {
  const d = await poolDestination(t);
  const web = await startHttpServer();
  t.after(() => web.close());
  const ups = await members(t, ['127.0.0.241', '127.0.0.242']);
  const gw = await poolGateway(t, { strategy: 'sticky', members: [`${url(ups[0]!)}#country=de`, `${url(ups[1]!)}#country=us`] });
  const seen = async (pred: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
    const line = await gw.accessLog(pred, 5_000);
    assert.ok(line, 'an access-log line');
    return line;
  };

  // SOCKS5 (RFC 1929) and HTTP (Basic), as Scrapy and Playwright log in.
  assert.equal(await throughPool(gw, d, 'alice-session-K7-country-us'), ups[1]!.host);
  const socks = await seen((l) => l.protocol === 'socks5' && l.dest === `127.0.0.1:${d.port}`);
  assert.equal(socks.user, 'alice');
  assert.equal(socks.session, 'K7');
  assert.equal(socks.member, url(ups[1]!));

  const r = await curl(['-x', `http://127.0.0.1:${gw.port}`, '-U', 'alice-country-de-session-K8:pw', `${web.url}/page`]);
  assert.equal(r.code, 0, r.stderr);
  const http = await seen((l) => l.protocol === 'http' && l.dest === `127.0.0.1:${web.port}`);
  assert.equal(http.status, 200);
  assert.equal(http.user, 'alice');
  assert.equal(http.session, 'K8');
  assert.equal(http.member, url(ups[0]!));

  // No session given: none named (the key the pool pins such a login by is the user's, not a session).
  assert.equal(typeof (await throughPool(gw, d, 'alice-country-de')), 'string');
  const none = await seen((l) => l.protocol === 'socks5' && l.dest === `127.0.0.1:${d.port}` && l.sid !== socks.sid);
  assert.equal(none.user, 'alice');
  assert.equal('session' in none, false);
});
