import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import type { PoolConfig, PoolStrategy } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep } from '../../src/errors.js';
import { memberSpec } from '../../src/outbound/pool-member.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { PoolExhaustedError } from '../../src/outbound/pool-errors.js';
import { createHttpOutbound } from '../../src/outbound/http.js';
import { createSocks4Outbound } from '../../src/outbound/socks4.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import type { MemberSpec, Outbound, OutboundContext } from '../../src/outbound/types.js';
import { blackhole } from '../helpers/blackhole.js';
import { resolverWithServer } from '../helpers/dns-server.js';
import { listenTracked } from '../helpers/servers.js';
import { startScriptedSocks } from '../helpers/instruments.js';
import { poolDestination, poolMembers } from '../helpers/pool.js';
import { startUdpEchoServer } from '../helpers/udp.js';
import { freePort, makePki, readAll, startDante, startMicrosocks, startScriptedSocks as startRespondingSocks, startSquid, startTinyproxy, startTlsTerminator, type Destination } from '../helpers/upstreams.js';

const silent = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (sessionKey = 'anon'): OutboundContext => ({ signal: new AbortController().signal, log: silent, sessionKey });
const pool = (strategy: PoolStrategy, extra: Partial<PoolConfig> = {}): PoolConfig => ({ type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy, ...extra });

const specs = (outbounds: Outbound[]): MemberSpec[] => outbounds.map((o) => memberSpec(o));

/** A member that is never connected through: for choices only. */
const named = (name: string): Outbound => ({ name, connect: () => Promise.reject(new Error('unused')), close: async () => {} });

function member(u: { host: string; port: number }): Outbound {
  return createSocks5Outbound(`socks5://${u.host}:${u.port}`, { type: 'socks5', host: u.host, port: u.port, remote_dns: true }, { dns, connectTimeout: 2_000 });
}

/** One request through `out`: the address the destination saw. */
async function via(out: Outbound, d: Destination, key?: string): Promise<{ peer: string; member: string | undefined }> {
  const conn = await out.connect({ host: '127.0.0.1', port: d.port }, ctx(key));
  const text = await readAll(conn.socket);
  conn.release?.();
  return { peer: text.trim().replace('hello ', ''), member: conn.member };
}

function capture(): { log: Logger; lines: { msg: string }[] } {
  const lines: { msg: string }[] = [];
  return { log: pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { msg: string }) }), lines };
}

test('sticky: same member on every instance, keys spread, losing a member moves only its keys', () => {
  const names = Array.from({ length: 10 }, (_, i) => `socks5://u@10.0.0.${i}:1080`);
  const a = createPoolOutbound('p', pool('sticky'), { members: specs(names.map(named)), log: silent });
  const b = createPoolOutbound('p', pool('sticky'), { members: specs([...names].reverse().map(named)), log: silent });
  const fewer = createPoolOutbound('p', pool('sticky'), { members: specs(names.filter((n) => n !== names[3]).map(named)), log: silent });
  const counts = new Map<string, number>();
  for (let i = 0; i < 1000; i++) {
    const key = `session-${i}`;
    const chosen = a.pick(key)!;
    assert.equal(b.pick(key), chosen);
    assert.equal(a.pick(key), chosen);
    counts.set(chosen, (counts.get(chosen) ?? 0) + 1);
    if (chosen !== names[3]) assert.equal(fewer.pick(key), chosen, `${key} moved though its member stayed`);
    else assert.notEqual(fewer.pick(key), undefined);
  }
  assert.equal(counts.size, 10);
  for (const n of counts.values()) assert.ok(n > 50 && n < 150, `uneven spread: ${[...counts.values()].join(',')}`);
});

test("sticky_lifetime: a session that names no lifetime keeps its member for the pool's, and moves after it as one naming it would", () => {
  const names = Array.from({ length: 10 }, (_, i) => `socks5://u@10.0.0.${i}:1080`);
  let clock = Date.UTC(2026, 0, 1);
  const make = (extra: Partial<PoolConfig>) => createPoolOutbound('p', pool('sticky', extra), { members: specs(names.map(named)), log: silent, now: () => clock });
  const bounded = make({ sticky_lifetime: 600_000 });
  const unbounded = make({});
  let moved = 0;
  for (let i = 0; i < 50; i++) {
    const key = `s${i}`;
    const first = bounded.pick(key);
    // The pool's lifetime stands in for the client's own `-lifetime-10m`.
    assert.equal(first, unbounded.pick(key, { session: key, lifetime: '10m' }), key);
    const kept = unbounded.pick(key);
    clock += 600_000;
    if (bounded.pick(key) !== first) moved++;
    assert.equal(unbounded.pick(key), kept, `${key}: without a lifetime the session keeps its member`);
    clock -= 600_000;
  }
  assert.ok(moved > 0, 'after sticky_lifetime sessions move to another member');
});

test('round-robin starts where rotationStart says, a fraction of the way round; at the first member without it', () => {
  const names = Array.from({ length: 4 }, (_, i) => `socks5://10.0.0.${i}:1080`);
  const at = (rotationStart?: number): string | undefined =>
    createPoolOutbound('rr', pool('round-robin'), { members: specs(names.map(named)), log: silent, ...(rotationStart === undefined ? {} : { rotationStart }) }).pick('anon');
  assert.equal(at(), names[0]);
  assert.equal(at(0), names[0]);
  assert.equal(at(1 / 2), names[2], 'the second of two workers starts halfway round');
  assert.equal(at(3 / 4), names[3]);
  assert.equal(
    createPoolOutbound('fo', pool('failover'), { members: specs(names.map(named)), log: silent, rotationStart: 1 / 2 }).pick('anon'),
    names[0],
    'failover still prefers the first member',
  );
});

test('round-robin uses every member in turn', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.11', '127.0.0.12', '127.0.0.13']);
  const p = createPoolOutbound('rr', pool('round-robin'), { members: specs(ups.map(member)), log: silent });
  t.after(() => p.close());
  const peers: string[] = [];
  for (let i = 0; i < 6; i++) peers.push((await via(p, d)).peer);
  assert.deepEqual(peers, ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.11', '127.0.0.12', '127.0.0.13']);
  assert.deepEqual(
    p.stats().map((s) => [s.attempts, s.active, s.healthy]),
    [[2, 0, true], [2, 0, true], [2, 0, true]],
  );
});

test('sticky through real members: one member per session key, different keys spread', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.14', '127.0.0.15', '127.0.0.16']);
  const p = createPoolOutbound('st', pool('sticky'), { members: specs(ups.map(member)), log: silent });
  t.after(() => p.close());
  const used = new Set<string>();
  for (let k = 0; k < 20; k++) {
    const key = `crawl-${k}`;
    const first = await via(p, d, key);
    assert.equal(first.member, p.pick(key));
    for (let i = 0; i < 2; i++) assert.deepEqual(await via(p, d, key), first);
    used.add(first.peer);
  }
  assert.ok(used.size > 1, 'twenty keys all on one member');
});

test('least-connections goes to the member with fewer open connections', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.17', '127.0.0.18']);
  const p = createPoolOutbound('lc', pool('least-connections'), { members: specs(ups.map(member)), log: silent });
  t.after(() => p.close());
  const c1 = await p.connect({ host: '127.0.0.1', port: d.port }, ctx());
  const c2 = await p.connect({ host: '127.0.0.1', port: d.port }, ctx());
  assert.notEqual(c1.member, c2.member);
  c1.release?.();
  c1.release?.(); // once only
  const c3 = await p.connect({ host: '127.0.0.1', port: d.port }, ctx());
  assert.equal(c3.member, c1.member, 'the member whose connection ended has fewer open now');
  const c4 = await p.connect({ host: '127.0.0.1', port: d.port }, ctx());
  const active = p.stats().map((s) => s.active);
  assert.deepEqual([...active].sort(), [1, 2], `open connections per member: ${active.join(',')}`);
  for (const c of [c1, c2, c3, c4]) c.socket.destroy();
});

test('failover: the first healthy member in order, the next when it dies', async (t) => {
  const d = await poolDestination(t);
  const [a, b] = await poolMembers(t, ['127.0.0.19', '127.0.0.20']);
  const p = createPoolOutbound('fo', pool('failover'), { members: specs([member(a!), member(b!)]), log: silent });
  t.after(() => p.close());
  assert.equal((await via(p, d)).peer, '127.0.0.19');
  assert.equal((await via(p, d)).peer, '127.0.0.19');
  await a!.close();
  for (let i = 0; i < 4; i++) assert.equal((await via(p, d)).peer, '127.0.0.20', 'retried on the next member');
  assert.equal(p.pick('x'), `socks5://127.0.0.20:${b!.port}`, 'the dead first member is ejected');
  assert.equal(p.stats()[0]!.healthy, false);
});

test('all members down: the last error, then a clear 0x01, and one log line', async () => {
  const ports = [await freePort('127.0.0.21'), await freePort('127.0.0.22')];
  const { log, lines } = capture();
  const p = createPoolOutbound('dead', pool('round-robin'), {
    members: specs([member({ host: '127.0.0.21', port: ports[0]! }), member({ host: '127.0.0.22', port: ports[1]! })]),
    log,
  });
  const reps: number[] = [];
  for (let i = 0; i < 10; i++) {
    const err = await p.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(
      () => assert.fail('connected through dead members'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof GatewayError);
    reps.push(err.rep);
    if (i >= 3) assert.ok(err instanceof PoolExhaustedError, err.message);
  }
  assert.deepEqual(reps, [5, 5, 5, 1, 1, 1, 1, 1, 1, 1]);
  assert.equal(lines.filter((l) => l.msg === 'pool has no healthy member').length, 1);
  assert.equal(lines.filter((l) => l.msg === 'pool member ejected').length, 2);
  await p.close();
});

test('passive ejection backs off exponentially before a single trial', async () => {
  const port = await freePort('127.0.0.23');
  let now = 1_000_000;
  const p = createPoolOutbound('one', pool('round-robin', { max_attempts: 1 }), {
    members: specs([member({ host: '127.0.0.23', port })]),
    log: silent,
    now: () => now,
  });
  const attempt = (): Promise<unknown> => p.connect({ host: '127.0.0.1', port: 9 }, ctx()).then(() => assert.fail('connected'), (e: unknown) => e);
  for (let i = 0; i < 3; i++) await attempt();
  assert.equal(p.pick('k'), undefined);
  assert.equal(p.stats()[0]!.ejectedForMs, 5_000);
  now += 4_999;
  assert.equal(p.pick('k'), undefined);
  now += 1;
  assert.ok(p.pick('k'), 'due for a trial');
  const trial = await attempt();
  assert.equal((trial as GatewayError).rep, Rep.CONNECTION_REFUSED);
  assert.equal(p.stats()[0]!.ejectedForMs, 10_000, 'a failed trial doubles the backoff');
});

test('members ejected together and due for their trials together: a request tries one, then a member in rotation', async (t) => {
  const d = await poolDestination(t);
  const [live] = await poolMembers(t, ['127.0.0.38']);
  const dead: Outbound[] = [];
  for (const host of ['127.0.0.39', '127.0.0.40', '127.0.0.39']) dead.push(member({ host, port: await freePort(host) }));
  let now = 1_000_000;
  const p = createPoolOutbound('block', pool('round-robin', { ban_after: 1, max_attempts: 3 }), { members: specs([...dead, member(live!)]), log: silent, now: () => now });
  t.after(() => p.close());
  // The three dead members in a row: one request ejects them all, the next reaches the live one.
  await assert.rejects(via(p, d));
  assert.equal((await via(p, d)).peer, '127.0.0.38');
  assert.deepEqual(p.stats().map((s) => s.healthy), [false, false, false, true]);
  // Their backoffs end at once; the rotation is at the first of them again.
  now += 5_000;
  for (let i = 0; i < 3; i++) assert.equal((await via(p, d)).peer, '127.0.0.38', 'one trial failed, then the member in rotation');
  assert.deepEqual(p.stats().map((s) => s.attempts), [2, 2, 2, 4], 'each due member had its trial once, one per request');
});

test('killing a member mid-run: others take over, retries hide it, health checks bring it back', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.24', '127.0.0.25', '127.0.0.26']);
  const { log, lines } = capture();
  const p = createPoolOutbound('hc', pool('round-robin', { health_check: { interval: 100, timeout: 1_000, target: `127.0.0.1:${d.port}` } }), {
    members: specs(ups.map(member)),
    log,
  });
  p.start?.();
  t.after(() => p.close());
  for (let i = 0; i < 3; i++) await via(p, d);
  const victim = ups[1]!;
  await victim.close();
  const peers = new Set<string>();
  for (let i = 0; i < 12; i++) peers.add((await via(p, d)).peer); // none of these may fail
  assert.deepEqual([...peers].sort(), ['127.0.0.24', '127.0.0.26']);
  assert.equal(p.stats()[1]!.healthy, false);
  const back = await startMicrosocks({ host: victim.host, port: victim.port });
  t.after(() => back.close());
  for (let i = 0; i < 100 && !p.stats()[1]!.healthy; i++) await sleep(50);
  assert.equal(p.stats()[1]!.healthy, true, 're-admitted by a passing health check');
  const after = new Set<string>();
  for (let i = 0; i < 3; i++) after.add((await via(p, d)).peer);
  assert.ok(after.has('127.0.0.25'));
  assert.ok(lines.some((l) => l.msg === 'pool member re-admitted'));
});

test('a health-check target that hangs for every member ejects none; a member that hangs on it while another reaches it is ejected', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.27', '127.0.0.28']);
  const checked = (target: string, outbounds: Outbound[]) => {
    const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 2, health_check: { interval: 100, timeout: 300, target } }), { members: specs(outbounds), log: silent });
    p.start?.();
    t.after(() => p.close());
    return p;
  };
  const down = checked(`127.0.0.1:${await blackhole(t, '127.0.0.1')}`, ups.map(member));
  await sleep(1_500); // a dozen rounds, each timing out through both members
  assert.deepEqual(down.stats().map((s) => s.healthy), [true, true]);
  assert.equal((await via(down, d)).peer, '127.0.0.27', 'requests still go through');
  // Answers the greeting, then never the CONNECT: waiting on the target, as far as it says.
  const stuck = await startScriptedSocks(Buffer.alloc(0), '127.0.0.1');
  t.after(() => stuck.close());
  const up = checked(`127.0.0.1:${d.port}`, [member(ups[0]!), member(stuck)]);
  for (let i = 0; i < 60 && up.stats()[1]!.healthy; i++) await sleep(50);
  assert.deepEqual(up.stats().map((s) => s.healthy), [true, false]);
});

test('a member that refuses a down check target (squid\'s 503) does not make another member\'s silence on it a fault', async (t) => {
  const target = `127.0.0.1:${await blackhole(t, '127.0.0.1')}`;
  // squid gives up on the target after its connect_timeout and answers 503 (ERR_CONNECT_FAIL 110);
  // tinyproxy keeps waiting on it past the check's timeout. Neither reached the target.
  const squid = await startSquid({ host: '127.0.0.176', connectTimeout: '1 second' });
  t.after(() => squid.close());
  const tiny = await startTinyproxy({ host: '127.0.0.177' });
  t.after(() => tiny.close());
  const httpMember = (u: { host: string; port: number }): Outbound =>
    createHttpOutbound(`http://${u.host}:${u.port}`, { type: 'http', host: u.host, port: u.port, tls: false, remote_dns: true }, { dns, connectTimeout: 10_000 });
  const waiting = httpMember(tiny);
  let settled = 0;
  const counted: Outbound = { name: waiting.name, connect: (d, c) => waiting.connect(d, c).finally(() => void settled++), close: () => waiting.close() };
  const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 1, health_check: { interval: 200, timeout: 3_000, target } }), {
    members: specs([httpMember(squid), counted]),
    log: silent,
  });
  p.start?.();
  t.after(() => p.close());
  for (let i = 0; i < 200 && settled === 0; i++) await sleep(50); // tinyproxy's first check gives up at 3 s
  await sleep(50); // and the pool reads its outcome
  assert.equal(settled > 0, true, 'no check of the tinyproxy member ended');
  const [answered, silentOne] = p.stats();
  assert.deepEqual([silentOne!.healthy, silentOne!.consecutiveFailures], [true, 0], 'the silent member was blamed for a target nobody reached');
  assert.deepEqual([answered!.healthy, answered!.consecutiveFailures], [true, 0]);
  assert.equal(answered!.latencyMs, undefined, 'a refusal after squid\'s own timeout is no connect latency');
});

test('a check that outlasts the member\'s connect_timeout: waiting on a target down for all ejects none; waiting while another member reaches it does', async (t) => {
  const tiny = await startTinyproxy({ host: '127.0.0.178' });
  t.after(() => tiny.close());
  // limits.connect_timeout (300 ms here) shorter than health_check.timeout: the member's own
  // deadline, not the check's, ends the wait for the target.
  const waiting = createHttpOutbound('tiny', { type: 'http', host: tiny.host, port: tiny.port, tls: false, remote_dns: true }, { dns, connectTimeout: 300 });
  let settled = 0;
  const counted: Outbound = { name: waiting.name, connect: (d, c) => waiting.connect(d, c).finally(() => void settled++), close: () => waiting.close() };
  const checked = (target: string, outbounds: Outbound[]) => {
    const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 1, health_check: { interval: 100, timeout: 3_000, target } }), { members: specs(outbounds), log: silent });
    p.start?.();
    t.after(() => p.close());
    return p;
  };
  const down = checked(`127.0.0.1:${await blackhole(t, '127.0.0.1')}`, [counted]);
  for (let i = 0; i < 100 && settled < 3; i++) await sleep(50);
  await sleep(50); // the pool reads the last outcome
  assert.ok(settled >= 3, 'the checks did not end');
  assert.deepEqual(down.stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0]]);
  await down.close();
  // Answers the greeting, then never the CONNECT, while microsocks reaches the target: its own fault.
  const d = await poolDestination(t);
  const [reaching] = await poolMembers(t, ['127.0.0.179']);
  const stuck = await startScriptedSocks(Buffer.alloc(0), '127.0.0.1');
  t.after(() => stuck.close());
  const stuckMember = createSocks5Outbound('stuck', { type: 'socks5', host: stuck.host, port: stuck.port, remote_dns: true }, { dns, connectTimeout: 300 });
  const up = checked(`127.0.0.1:${d.port}`, [member(reaching!), stuckMember]);
  for (let i = 0; i < 100 && up.stats()[1]!.healthy; i++) await sleep(50);
  assert.deepEqual(up.stats().map((s) => s.healthy), [true, false]);
});

test('a check target this gateway cannot resolve (remote_dns: false) is no fault of the members: none is ejected', async (t) => {
  // The gateway's DNS answers SERVFAIL for the target: socks4 members take addresses, so the name is resolved here.
  const { dns: failing } = await resolverWithServer(t, { 'target.test': { servfail: true } }, { negative_ttl: 100 });
  const dante = await startDante({ host: '127.0.0.180' });
  t.after(() => dante.close());
  const four = createSocks4Outbound('four', { type: 'socks4', host: dante.host, port: dante.port, remote_dns: false }, { dns: failing, connectTimeout: 2_000 });
  let settled = 0;
  const counted: Outbound = { name: four.name, connect: (d, c) => four.connect(d, c).finally(() => void settled++), close: () => four.close() };
  const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 1, health_check: { interval: 100, timeout: 2_000, target: 'target.test:80' } }), {
    members: specs([counted]),
    log: silent,
  });
  p.start?.();
  t.after(() => p.close());
  for (let i = 0; i < 100 && settled < 3; i++) await sleep(50);
  await sleep(50); // the pool reads the last outcome
  assert.ok(settled >= 3, 'the checks did not end');
  assert.deepEqual(p.stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0]]);
});

test('a member ejected by its health checks alone is logged with the failure that ejected it (an https member whose certificate does not verify)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-pool-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.181'] });
  const tiny = await startTinyproxy({ host: '127.0.0.182' });
  t.after(() => tiny.close());
  const front = await startTlsTerminator('127.0.0.181', pki, tiny);
  t.after(() => front.close());
  // No `ca`: the system store, which does not know this CA.
  const https = createHttpOutbound(`https://${front.host}:${front.port}`, { type: 'http', host: front.host, port: front.port, tls: true, remote_dns: true }, { dns, connectTimeout: 2_000 });
  const { log, lines } = capture();
  const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 1, health_check: { interval: 100, timeout: 2_000, target: '127.0.0.1:9' } }), { members: specs([https]), log });
  p.start?.();
  t.after(() => p.close());
  for (let i = 0; i < 100 && !lines.some((l) => l.msg === 'pool member ejected'); i++) await sleep(50);
  const ejected = lines.find((l) => l.msg === 'pool member ejected') as { error?: string } | undefined;
  assert.ok(ejected, 'the member was not ejected');
  assert.match(ejected.error ?? '', /UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
});

test('a member whose health checks time out is logged as timing out (an https member that takes the connection and never answers TLS)', async (t) => {
  const held: Socket[] = [];
  // Test instrument: accepts and says nothing, as a proxy whose TLS front hangs.
  const silent = await listenTracked(createServer((s) => void held.push(s.on('error', () => {}))), '127.0.0.183');
  t.after(() => silent.close());
  t.after(() => held.forEach((s) => s.destroy()));
  const https = createHttpOutbound(`https://127.0.0.183:${silent.port}`, { type: 'http', host: '127.0.0.183', port: silent.port, tls: true, remote_dns: true }, { dns, connectTimeout: 10_000 });
  const { log, lines } = capture();
  const p = createPoolOutbound('hc', pool('round-robin', { ban_after: 1, health_check: { interval: 100, timeout: 300, target: '127.0.0.1:9' } }), { members: specs([https]), log });
  p.start?.();
  t.after(() => p.close());
  for (let i = 0; i < 100 && !lines.some((l) => l.msg === 'pool member ejected'); i++) await sleep(50);
  const ejected = lines.find((l) => l.msg === 'pool member ejected') as { error?: string } | undefined;
  assert.ok(ejected, 'the member was not ejected');
  assert.match(ejected.error ?? '', /health check timed out after 300ms/);
});

test('a UDP association the upstream ends no longer counts in its member\'s active connections', async (t) => {
  const relay = await startUdpEchoServer();
  t.after(() => relay.close());
  // The upstream grants the association (BND: the echo server's port), then ends it.
  const up = await startScriptedSocks(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, relay.port >> 8, relay.port & 0xff]));
  t.after(() => up.close());
  const p = createPoolOutbound('udp', pool('least-connections'), { members: specs([member(up)]), log: silent });
  t.after(() => p.close());
  const channel = await p.openUdp!(ctx());
  t.after(() => channel.close());
  assert.equal(p.stats()[0]!.active, 1);
  (await up.accepted).destroy();
  // Nothing calls close: an association that goes on with other destinations keeps it unclosed.
  // A datagram sent through it is dropped once the channel knows its upstream is gone.
  const drops: string[] = [];
  channel.onDrop!((reason) => drops.push(reason));
  for (let turn = 0; turn < 1_000 && !drops.includes('upstream_closed'); turn++) {
    channel.send({ host: '127.0.0.1', port: 9 }, Buffer.from('x'));
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.ok(drops.includes('upstream_closed'), 'the channel saw its upstream end');
  assert.equal(p.stats()[0]!.active, 0, 'the ended association still counted as open');
});

test('UDP and BIND through a pool go to a member that can carry them', async (t) => {
  const dante = await startDante({ host: '127.0.0.27' });
  t.after(() => dante.close());
  const plain = member(dante);
  const chained = createSocks5Outbound('chained', { type: 'socks5', host: dante.host, port: dante.port, remote_dns: true }, { dns, connectTimeout: 2_000, via: plain });
  assert.equal(chained.openUdp, undefined, 'a chain cannot carry UDP');
  const p = createPoolOutbound('udp', pool('round-robin'), { members: specs([chained, plain]), log: silent });
  t.after(() => p.close());
  assert.ok(p.openUdp && p.bind);
  for (let i = 0; i < 2; i++) {
    const channel = await p.openUdp(ctx());
    channel.close();
  }
  assert.deepEqual(p.stats().map((s) => s.attempts), [0, 2], 'only the member that can carry UDP was tried');
  // An association and a BIND each hold a connection to their member until closed, as a relayed connection does.
  const channel = await p.openUdp(ctx());
  t.after(() => channel.close());
  const handle = await p.bind({ host: '127.0.0.1', port: 9 }, ctx());
  t.after(() => handle.close());
  const active = (): number[] => p.stats().map((s) => s.active);
  assert.equal(active().reduce((a, b) => a + b), 2, `open per member: ${active().join(',')}`);
  assert.equal(handle.listening.port > 0, true, 'the BIND handle lost its listening address');
  channel.close();
  channel.close(); // once only
  handle.close();
  assert.deepEqual(active(), [0, 0]);
  const onlyChained = createPoolOutbound('none', pool('round-robin'), { members: specs([chained]), log: silent });
  assert.equal(onlyChained.openUdp, undefined);
});

test('UDP and BIND through a pool: a member that never answers is at fault, and the next member carries them', async (t) => {
  const relay = await startUdpEchoServer();
  t.after(() => relay.close());
  const mute = await startRespondingSocks({ silent: true });
  t.after(() => mute.close());
  // Grants an ASSOCIATE (BND: the echo server) and a BIND's first reply alike.
  const up = await startScriptedSocks(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, relay.port >> 8, relay.port & 0xff]));
  t.after(() => up.close());
  const quick = (u: { host: string; port: number }): Outbound => createSocks5Outbound(`socks5://${u.host}:${u.port}`, { type: 'socks5', host: u.host, port: u.port, remote_dns: true }, { dns, connectTimeout: 300 });
  const p = createPoolOutbound('mixed', pool('failover', { max_attempts: 2 }), { members: specs([quick(mute), quick(up)]), log: silent });
  t.after(() => p.close());
  const channel = await p.openUdp!(ctx());
  t.after(() => channel.close());
  const handle = await p.bind!({ host: '127.0.0.1', port: 9 }, ctx());
  t.after(() => handle.close());
  assert.deepEqual(p.stats().map((s) => s.active), [0, 2], 'both went through the member that answers');
  assert.equal(p.stats()[0]!.consecutiveFailures, 2, 'the silent member is blamed for both');
});
