// Pool members through real gateways: `fastest` prefers the member without an added delay,
// username templates reach the member filled in, and a member's reply about the destination
// goes to the client unretried while the member stays in rotation (PRODUCT.md "Pool strategies",
// "Crawler sessions").
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { SocksClient } from 'socks';
import { fromSocksError } from '../../src/outbound/socks5-errors.js';
import { blackhole } from '../helpers/blackhole.js';
import { socks5Rep, startGateway } from '../helpers/index.js';
import { startDelayingForwarder, startRecordingSocks } from '../helpers/instruments.js';
import { poolDestination, poolGateway, poolOf, throughPool } from '../helpers/pool.js';
import { httpConnectRaw } from '../helpers/raw-proxy.js';
import { startDante, startMicrosocks, startTinyproxy } from '../helpers/upstreams.js';

/**
 * Two microsocks members for `fastest`: one on `fastHost`, the other on `slowHopHost` reached
 * through a delaying forwarder on `slowHost` (300 ms added to each connect).
 */
async function fastAndSlowMembers(t: TestContext, fastHost: string, slowHopHost: string, slowHost: string) {
  const fast = await startMicrosocks({ host: fastHost });
  t.after(() => fast.close());
  const slowHop = await startMicrosocks({ host: slowHopHost });
  t.after(() => slowHop.close());
  const slow = await startDelayingForwarder(slowHost, slowHop, 300);
  t.after(() => slow.close());
  return { fast, slow };
}

test('fastest: each member is probed, then the one without the added delay takes the traffic', async (t) => {
  const d = await poolDestination(t);
  const { fast, slow } = await fastAndSlowMembers(t, '127.0.0.125', '127.0.0.126', '127.0.0.127');
  // The slow member first in the list: failover would pick it every time.
  const gw = await poolGateway(t, { strategy: 'fastest', members: [`socks5://${slow.host}:${slow.port}`, `socks5://${fast.host}:${fast.port}`] });
  const probes = [await throughPool(gw, d), await throughPool(gw, d)];
  assert.deepEqual([...probes].sort(), ['127.0.0.125', '127.0.0.126'], 'both members probed before either is judged');
  const after: (string | number)[] = [];
  for (let i = 0; i < 8; i++) after.push(await throughPool(gw, d));
  assert.deepEqual(new Set(after), new Set(['127.0.0.125']), `the fast member only: ${after.join(',')}`);
  const [slowStats, fastStats] = poolOf(gw).stats();
  assert.ok(slowStats!.latencyMs! > fastStats!.latencyMs!, `latency slow ${slowStats!.latencyMs} fast ${fastStats!.latencyMs}`);
});

test('fastest: latencies the health checks measured pick the fast member from the first request; the slow one is not sent a request to measure it again', async (t) => {
  const d = await poolDestination(t);
  const { fast, slow } = await fastAndSlowMembers(t, '127.0.0.131', '127.0.0.132', '127.0.0.133');
  const gw = await poolGateway(t, {
    strategy: 'fastest',
    members: [`socks5://${slow.host}:${slow.port}`, `socks5://${fast.host}:${fast.port}`],
    health_check: { interval: '10s', timeout: '5s', target: `${d.host}:${d.port}` },
  });
  // The first round of checks measures both members (bounded wait, no request sent yet).
  for (let i = 0; i < 100 && poolOf(gw).stats().some((s) => s.latencyMs === undefined); i++) await sleep(50);
  const [slowStats, fastStats] = poolOf(gw).stats();
  assert.ok(slowStats!.latencyMs! > fastStats!.latencyMs!, `latency slow ${slowStats!.latencyMs} fast ${fastStats!.latencyMs}`);
  const picks: (string | number)[] = [];
  for (let i = 0; i < 4; i++) picks.push(await throughPool(gw, d));
  assert.deepEqual(picks, ['127.0.0.131', '127.0.0.131', '127.0.0.131', '127.0.0.131']);
});

test('templates: a member receives {user}, {session} and {NAME} filled, and parts the client left out dropped', async (t) => {
  const d = await poolDestination(t);
  const relay = await startMicrosocks({ host: '127.0.0.128' });
  t.after(() => relay.close());
  const provider = await startRecordingSocks('127.0.0.129', relay);
  t.after(() => provider.close());
  const other = await startMicrosocks({ host: '127.0.0.130' });
  t.after(() => other.close());
  const secret = 'Pr0v1der-S3cret';
  const template = encodeURIComponent('cust1-zone-z1-session-{session}-country-{country}-u-{user}');
  const gw = await poolGateway(t, {
    strategy: 'round-robin',
    members: [`socks5://${template}:${secret}@${provider.host}:${provider.port}`, `socks5://${other.host}:${other.port}#country=us`],
  });
  // A country filter: the tagged member does not match, the provider fills {country} itself.
  assert.equal(await throughPool(gw, d, 'alice-session-s1-country-de'), '127.0.0.128');
  assert.equal(await throughPool(gw, d, 'alice-country-fr-session-s2'), '127.0.0.128');
  // Round-robin among the members tagged us or filling {country}, then among all.
  assert.equal(await throughPool(gw, d, 'alice-country-us'), '127.0.0.128');
  assert.equal(await throughPool(gw, d, 'alice-country-us'), '127.0.0.130');
  assert.equal(await throughPool(gw, d, 'alice-lifetime-1m'), '127.0.0.128');
  assert.equal(await throughPool(gw, d, 'alice-lifetime-1m'), '127.0.0.130');
  assert.deepEqual(
    provider.logins.map((l) => l.username),
    ['cust1-zone-z1-session-s1-country-de-u-alice', 'cust1-zone-z1-session-s2-country-fr-u-alice', 'cust1-zone-z1-country-us-u-alice', 'cust1-zone-z1-u-alice'],
  );
  assert.ok(provider.logins.every((l) => l.password === secret));
  const text = JSON.stringify(gw.logs) + JSON.stringify(poolOf(gw).stats());
  assert.ok(!text.includes(secret), 'the member password is in a log line or the stats');
  assert.ok(text.includes('%7Bsession%7D') || text.includes('{session}'), 'the member is named by its template, not a filled username');
});

test('a login refused for a value the client filled in ({country}) does not eject the member for everyone; a refused login of its own still does', async (t) => {
  const d = await poolDestination(t);
  // The providers know country de only: any other value in the filled username is a refused login.
  const socks = await startMicrosocks({ host: '127.0.0.210', user: 'cust-country-de', pass: 'sec' });
  t.after(() => socks.close());
  const http = await startTinyproxy({ host: '127.0.0.211', user: 'hcust-country-de', pass: 'sec' });
  t.after(() => http.close());
  const members: Array<[string, string]> = [
    [`socks5://${encodeURIComponent('cust-country-{country}')}:sec@${socks.host}:${socks.port}`, socks.host],
    [`http://${encodeURIComponent('hcust-country-{country}')}:sec@${http.host}:${http.port}`, http.host],
  ];
  for (const [member, exit] of members) {
    const gw = await poolGateway(t, { strategy: 'round-robin', ban_after: 2, members: [member] });
    for (let i = 0; i < 4; i++) assert.equal(await throughPool(gw, d, 'alice-country-zz'), 0x01, `${member}: refused login ${i}`);
    const [stats] = poolOf(gw).stats();
    assert.equal(stats!.healthy, true, `${member}: ejected by a client's parameter`);
    assert.equal(await throughPool(gw, d, 'alice-country-de'), exit, `${member}: another client still served`);
  }
  // Without a value of the client's in it, the login that fails is the member's own: ejected.
  const wrong = await poolGateway(t, { strategy: 'round-robin', ban_after: 2, members: [`socks5://cust-country-de:wrong@${socks.host}:${socks.port}`] });
  for (let i = 0; i < 2; i++) assert.equal(await throughPool(wrong, d), 0x01);
  assert.equal(poolOf(wrong).stats()[0]!.healthy, false, 'a member with a wrong password stays in rotation');
});

test('a chained member whose hop before it fills the client\'s values: a refused or too long login there ejects no one, and the hop\'s {country} filters', async (t) => {
  const d = await poolDestination(t);
  // The entry hop knows one session and country only; the member behind it has no template of its own.
  const entry = await startMicrosocks({ host: '127.0.0.204', user: 'cust-session-s1-country-de', pass: 'sec' });
  t.after(() => entry.close());
  const exit = await startMicrosocks({ host: '127.0.0.205' });
  t.after(() => exit.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw' }] },
    upstreams: {
      entry: { type: 'socks5', host: entry.host, port: entry.port, username: 'cust-session-{session}-country-{country}', password: 'sec' },
      exit: { type: 'socks5', host: exit.host, port: exit.port, via: 'entry' },
      crawl: { type: 'pool', strategy: 'round-robin', ban_after: 2, members: ['exit'] },
    },
    default: 'crawl',
  });
  t.after(() => gw.close());
  // The hop's {country} is the provider's choice, as in a member's own username: not "no member matches".
  assert.equal(await throughPool(gw, d, 'alice-session-s1-country-de'), exit.host);
  for (let i = 0; i < 3; i++) assert.equal(await throughPool(gw, d, 'alice-session-s1-country-zz'), 0x01, `refused login ${i}`);
  for (let i = 0; i < 3; i++) {
    // Past the 255 bytes RFC 1929 carries once filled in: only an HTTP client can send it.
    const long = await httpConnectRaw(gw.port, d.port, { user: `alice-session-${'s'.repeat(300)}`, password: 'pw' });
    long.socket.destroy();
    assert.equal(long.code, 502, `long session ${i}`);
  }
  assert.equal(poolOf(gw).stats()[0]!.healthy, true, 'the member was ejected for a client\'s values');
  assert.equal(await throughPool(gw, d, 'alice-session-s1-country-de'), exit.host, 'another client still served');
});

test('a member refusing the destination (Dante, socks block: 0x02) is neither retried nor ejected', async (t) => {
  const blocked = await poolDestination(t, '127.0.0.131');
  const allowed = await poolDestination(t, '127.0.0.1');
  const dante = await startDante({ host: '127.0.0.132', block: ['127.0.0.131/32'] });
  t.after(() => dante.close());
  const spare = await startMicrosocks({ host: '127.0.0.133' });
  t.after(() => spare.close());
  // failover: Dante is tried first every time; a retry would reach the spare, which connects.
  const gw = await poolGateway(t, { strategy: 'failover', ban_after: 2, max_attempts: 3, members: [`socks5://${dante.host}:${dante.port}`, `socks5://${spare.host}:${spare.port}`] });
  for (let i = 0; i < 5; i++) assert.equal(await throughPool(gw, blocked), 0x02, `request ${i}`);
  assert.equal(blocked.peers.length, 0, 'no member reached the blocked destination');
  const [danteStats, spareStats] = poolOf(gw).stats();
  assert.equal(danteStats!.healthy, true);
  assert.equal(danteStats!.consecutiveFailures, 0);
  assert.equal(spareStats!.attempts, 0, 'the reply was not retried on the other member');
  assert.equal(await throughPool(gw, allowed), '127.0.0.132', 'Dante still serves');
  const line = await gw.accessLog((l) => l['rep'] === 0x02);
  assert.match(String(line?.['error']), /replied 2/);
  assert.equal(line?.['member'], `socks5://${dante.host}:${dante.port}`, 'the refusing member is named in the line');
});

test('a member that fails itself is replaced before the client hears, up to max_attempts', async (t) => {
  const d = await poolDestination(t);
  const dead = await startMicrosocks({ host: '127.0.0.134' });
  const deadPort = dead.port;
  await dead.close();
  const live = await startMicrosocks({ host: '127.0.0.135' });
  t.after(() => live.close());
  const gw = await poolGateway(t, { strategy: 'failover', ban_after: 2, max_attempts: 2, members: [`socks5://127.0.0.134:${deadPort}`, `socks5://${live.host}:${live.port}`] });
  for (let i = 0; i < 3; i++) assert.equal(await throughPool(gw, d), '127.0.0.135');
  const [deadStats] = poolOf(gw).stats();
  assert.equal(deadStats!.healthy, false, 'ejected after ban_after consecutive failures');
  assert.equal(deadStats!.attempts, 2, 'not tried once ejected (its backoff is running)');
  const once = await poolGateway(t, { strategy: 'failover', max_attempts: 1, members: [`socks5://127.0.0.134:${deadPort}`, `socks5://${live.host}:${live.port}`] });
  assert.equal(await throughPool(once, d), 0x05, 'max_attempts 1: the first failure is the answer');
});

test('a socks4 member (Dante) whose destination never answers: 0x06 within connect_timeout, neither retried nor ejected', async (t) => {
  const silent = await blackhole(t, '127.0.0.1');
  const d = await poolDestination(t);
  const first = await startDante({ host: '127.0.0.137' });
  t.after(() => first.close());
  const spare = await startDante({ host: '127.0.0.138' });
  t.after(() => spare.close());
  // SOCKS4 sends its request with no greeting before it: from then on, silence is the destination's.
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw' }] },
    upstreams: { crawl: { type: 'pool', strategy: 'failover', ban_after: 2, max_attempts: 3, members: [`socks4://${first.host}:${first.port}`, `socks4://${spare.host}:${spare.port}`] } },
    default: 'crawl',
    limits: { connect_timeout: '1s' },
  });
  t.after(() => gw.close());
  for (let i = 0; i < 3; i++) {
    const started = Date.now();
    assert.equal(await socks5Rep(gw.port, { host: '127.0.0.1', port: silent }, { user: 'alice', pass: 'pw' }), 0x06, `request ${i}`);
    assert.ok(Date.now() - started < 1_900, `request ${i}: one connect_timeout, not one per member (${Date.now() - started} ms)`);
  }
  const [firstStats, spareStats] = poolOf(gw).stats();
  assert.equal(firstStats!.healthy, true, 'not ejected for a destination that does not answer');
  assert.equal(firstStats!.consecutiveFailures, 0);
  assert.equal(spareStats!.attempts, 0, 'not retried on the other member');
  assert.equal(await throughPool(gw, d), '127.0.0.137', 'the member still serves');
});

test('members that differ only in their password (a provider that reads its session from it) are distinct members, named apart without it', async (t) => {
  const d = await poolDestination(t);
  const relay = await startMicrosocks({ host: '127.0.0.220' });
  t.after(() => relay.close());
  const provider = await startRecordingSocks('127.0.0.221', relay);
  t.after(() => provider.close());
  // IPRoyal's form: the same user and endpoint, the session and country in the password.
  const passwords = ['s3cret_country-de_session-aaa', 's3cret_country-de_session-bbb', 's3cret_country-us_session-ccc'];
  const gw = await poolGateway(t, {
    strategy: 'round-robin',
    members: [...passwords.map((p) => `socks5://cust:${encodeURIComponent(p)}@${provider.host}:${provider.port}`), `socks5://cust:${encodeURIComponent(passwords[0]!)}@${provider.host}:${provider.port}`],
  });
  for (let i = 0; i < 6; i++) assert.equal(await throughPool(gw, d), '127.0.0.220', `request ${i}`);
  assert.deepEqual(
    provider.logins.map((l) => l.password),
    [...passwords, ...passwords],
    'every member in turn, the one given twice once',
  );
  const names = poolOf(gw).stats().map((s) => s.name);
  const plain = `socks5://cust@${provider.host}:${provider.port}`;
  assert.deepEqual(names, [plain, `${plain}#2`, `${plain}#3`], 'the first keeps its plain name, the others are numbered in list order');
  const text = JSON.stringify(gw.logs) + JSON.stringify(poolOf(gw).stats());
  assert.ok(!text.includes('s3cret'), 'a member password is in a log line or the stats');
});

/** A SOCKS5 BIND through the gateway as `username`: the first reply's code (0 when it listens). */
async function bindRep(port: number, username: string): Promise<number> {
  const client = new SocksClient({ proxy: { host: '127.0.0.1', port, type: 5, userId: username, password: 'pw' }, command: 'bind', destination: { host: '127.0.0.1', port: 0 }, timeout: 5_000 });
  const bound = once(client, 'bound'); // an 'error' event rejects it
  client.connect();
  try {
    const [info] = (await bound) as [{ socket: { destroy(): void } }];
    client.on('error', () => {}); // the close that follows
    info.socket.destroy();
    return 0;
  } catch (err) {
    return fromSocksError('gateway', err).rep;
  }
}

test('a tag filter that leaves only members unable to BIND (http) gets 0x07 for a BIND, not a dead pool\'s 0x01; the members stay in rotation', async (t) => {
  const d = await poolDestination(t);
  const dante = await startDante({ host: '127.0.0.222' });
  t.after(() => dante.close());
  const http = await startTinyproxy({ host: '127.0.0.223' });
  t.after(() => http.close());
  const gw = await poolGateway(t, { strategy: 'round-robin', members: [`socks5://${dante.host}:${dante.port}#country=de`, `http://${http.host}:${http.port}#country=us`] });
  assert.equal(await bindRep(gw.port, 'alice-country-de'), 0, 'the socks5 member BINDs');
  assert.equal(await bindRep(gw.port, 'alice-country-us'), 0x07, 'no member tagged us can BIND');
  const line = await gw.accessLog((l) => l['rep'] === 0x07);
  assert.match(String(line?.['error']), /bind/i, `the line says the command is what no member carries: ${String(line?.['error'])}`);
  assert.deepEqual(poolOf(gw).stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0], [true, 0]]);
  assert.equal(await throughPool(gw, d, 'alice-country-us'), '127.0.0.223', 'the http member still CONNECTs');
});

test('a pool reached as a via hop takes any of its members: a session\'s tag filter neither refuses the chain (0x04) nor ejects the route\'s pool member for everyone', async (t) => {
  const d = await poolDestination(t);
  const direct = await poolDestination(t);
  const exit = await startDante({ host: '127.0.0.232' });
  t.after(() => exit.close());
  const entry = await startMicrosocks({ host: '127.0.0.233' });
  t.after(() => entry.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw' }] },
    upstreams: {
      // Untagged entry proxies in front of a provider that reads the country from its username.
      entry: { type: 'pool', members: [`socks5://${entry.host}:${entry.port}`] },
      exit: { type: 'socks5', host: exit.host, port: exit.port, via: 'entry', username: 'cust-country-{country}', password: 'x' },
      crawl: { type: 'pool', ban_after: 2, members: ['exit'] },
    },
    // The chain named by a rule itself, for one destination port.
    rules: [{ name: 'chain', ports: [direct.port], action: 'exit' }],
    default: 'crawl',
  });
  t.after(() => gw.close());
  for (let i = 0; i < 3; i++) assert.equal(await throughPool(gw, d, 'alice-country-de'), '127.0.0.232', `request ${i} through the pool`);
  assert.deepEqual(poolOf(gw).stats().map((s) => [s.healthy, s.failures]), [[true, 0]]);
  assert.equal(await throughPool(gw, d, 'alice'), '127.0.0.232', 'the member serves a session without the filter');
  assert.equal(await throughPool(gw, direct, 'alice-country-de'), '127.0.0.232', 'the chain a rule names serves a session with a filter');
});
