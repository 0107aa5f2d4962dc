// What a pool remembers, through real members (microsocks): rotation that goes on across
// per-request parameters and reloads, open connections counted across a reload, a rejected
// reload that changes nothing, and a `fastest` member measured slow once that gets tried again.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { PoolConfig, PoolStrategy } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { memberSpec } from '../../src/outbound/pool-member.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import { FASTEST_STALE_MS } from '../../src/outbound/strategies.js';
import type { Connection, MemberSpec, Outbound, OutboundContext } from '../../src/outbound/types.js';
import type { SessionParams } from '../../src/protocol/username.js';
import { startDelayingForwarder, startScriptedSocks } from '../helpers/instruments.js';
import { poolDestination, poolMembers } from '../helpers/pool.js';
import { freePort, readAll, type Destination } from '../helpers/upstreams.js';

const silent = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const pool = (strategy: PoolStrategy, extra: Partial<PoolConfig> = {}): PoolConfig => ({ type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy, ...extra });
const ctx = (params?: SessionParams): OutboundContext => ({ signal: new AbortController().signal, log: silent, sessionKey: 'anon', ...(params ? { params } : {}) });

function member(u: { host: string; port: number }): Outbound {
  return createSocks5Outbound(`socks5://${u.host}:${u.port}`, { type: 'socks5', host: u.host, port: u.port, remote_dns: true }, { dns, connectTimeout: 2_000 });
}

/** Members filling `placeholders` into their usernames, as a provider template does. */
const specs = (ups: { host: string; port: number }[], placeholders: string[] = []): MemberSpec[] =>
  ups.map((u) => ({ ...memberSpec(member(u)), placeholders }));

/** The address the destination saw for one request through `out` (each member connects out from its own). */
async function peerVia(out: Outbound, d: Destination, params?: SessionParams): Promise<string> {
  const conn = await out.connect({ host: '127.0.0.1', port: d.port }, ctx(params));
  const text = await readAll(conn.socket);
  conn.release?.();
  return text.trim().replace('hello ', '');
}

test('round-robin goes on rotating when every request names a parameter each member fills in (a fresh session id per request)', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.141', '127.0.0.142', '127.0.0.143']);
  const p = createPoolOutbound('rr', pool('round-robin'), { members: specs(ups, ['sid']), log: silent });
  t.after(() => p.close());
  const peers: string[] = [];
  for (let i = 0; i < 6; i++) peers.push(await peerVia(p, d, { sid: `s${i}` }));
  assert.deepEqual(peers, ['127.0.0.141', '127.0.0.142', '127.0.0.143', '127.0.0.141', '127.0.0.142', '127.0.0.143']);
});

test('a rotation over a tag filter starts where the pool is, not at its first member every time', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.144', '127.0.0.145']);
  const other = { host: '127.0.0.158', port: await freePort('127.0.0.158') };
  // Two members fill {city}, a third is tagged with one: each city is a filter of its own, leaving the two.
  const members: MemberSpec[] = [
    ...specs(ups, ['city']),
    { ...memberSpec(member(other), 1, { city: 'zz' }), placeholders: [] },
  ];
  const p = createPoolOutbound('rr', pool('round-robin'), { members, log: silent });
  t.after(() => p.close());
  const peers: string[] = [];
  for (let i = 0; i < 4; i++) peers.push(await peerVia(p, d, { city: `c${i}` }));
  assert.deepEqual(new Set(peers), new Set(['127.0.0.144', '127.0.0.145']), `a new filter each time, and all on one member: ${peers.join(',')}`);
});

test('a reload: rotation goes on from where it was, and connections opened before it are counted and released in the new pool', async (t) => {
  const d = await poolDestination(t);
  const ups = await poolMembers(t, ['127.0.0.146', '127.0.0.147', '127.0.0.148']);
  const rr = createPoolOutbound('rr', pool('round-robin'), { members: specs(ups), log: silent });
  assert.equal(await peerVia(rr, d), '127.0.0.146');
  const rr2 = createPoolOutbound('rr', pool('round-robin'), { members: specs(ups), log: silent, inherit: rr.memory() });
  await rr.close();
  t.after(() => rr2.close());
  assert.equal(await peerVia(rr2, d), '127.0.0.147', 'the reloaded pool started again at the first member');

  const lc = createPoolOutbound('lc', pool('least-connections'), { members: specs(ups.slice(0, 1)), log: silent });
  const held: Connection[] = [];
  for (let i = 0; i < 3; i++) held.push(await lc.connect({ host: '127.0.0.1', port: d.port }, ctx()));
  // A member added by the reload: the three open connections stay counted on the first one.
  const lc2 = createPoolOutbound('lc', pool('least-connections'), { members: specs(ups.slice(0, 2)), log: silent, inherit: lc.memory() });
  await lc.close();
  t.after(() => lc2.close());
  assert.deepEqual(lc2.stats().map((s) => s.active), [3, 0]);
  const next: string[] = [];
  for (let i = 0; i < 3; i++) {
    const conn = await lc2.connect({ host: '127.0.0.1', port: d.port }, ctx());
    held.push(conn);
    next.push((await readAll(conn.socket)).trim().replace('hello ', ''));
  }
  assert.deepEqual(next, ['127.0.0.147', '127.0.0.147', '127.0.0.147'], 'the new member has the fewest open connections');
  for (const c of held.slice(0, 3)) c.release?.();
  assert.deepEqual(lc2.stats().map((s) => s.active), [0, 3], 'connections of the old pool released into the new one');
  for (const c of held) c.socket.destroy();
});

test('a reload that is rejected leaves the running pool\'s ban_after as it was', async (t) => {
  const dead = { host: '127.0.0.149', port: await freePort('127.0.0.149') };
  const running = createPoolOutbound('p', pool('round-robin', { ban_after: 5, max_attempts: 1 }), { members: specs([dead]), log: silent });
  t.after(() => running.close());
  // Built with ban_after 1 from the running pool's records, then discarded (another part of the config was wrong).
  const rejected = createPoolOutbound('p', pool('round-robin', { ban_after: 1, max_attempts: 1 }), { members: specs([dead]), log: silent, inherit: running.memory() });
  await rejected.close();
  for (let i = 0; i < 4; i++) await assert.rejects(running.connect({ host: '127.0.0.1', port: 9 }, ctx()));
  assert.deepEqual([running.stats()[0]!.consecutiveFailures, running.stats()[0]!.healthy], [4, true], 'four failures of the five ban_after allows');
});

test('fastest: a member measured slow once is tried again when its figure is no longer recent, and its new figure counts', async (t) => {
  const d = await poolDestination(t);
  const [fastHop, slowHop] = await poolMembers(t, ['127.0.0.150', '127.0.0.156']);
  const slow = await startDelayingForwarder('127.0.0.157', slowHop!, 300);
  t.after(() => slow.close());
  let now = 1_000_000;
  const p = createPoolOutbound('f', pool('fastest'), { members: specs([slow, fastHop!]), log: silent, now: () => now });
  t.after(() => p.close());
  assert.deepEqual(new Set([await peerVia(p, d), await peerVia(p, d)]), new Set(['127.0.0.150', '127.0.0.156']), 'both probed');
  for (let i = 0; i < 4; i++) assert.equal(await peerVia(p, d), '127.0.0.150');
  slow.delayMs = 0; // the slow member is fast now; nothing measures it while it is not picked
  now += FASTEST_STALE_MS / 2;
  for (let i = 0; i < 4; i++) assert.equal(await peerVia(p, d), '127.0.0.150', 'a recent figure still counts');
  now += FASTEST_STALE_MS;
  assert.equal(await peerVia(p, d), '127.0.0.156', 'tried again once its figure is old');
  // The old figure is two held round trips (600 ms and more): averaged in (by 0.3) it would leave 420 ms at least;
  // replaced, what is left is one loopback handshake, with room for a loaded machine.
  const latency = p.stats()[0]!.latencyMs!;
  assert.ok(latency < 300, `the new figure replaces the old one rather than being averaged into it: ${latency} ms`);
});

test('a member answering 0x01 counts against itself when another member then reaches the destination, and is ejected', async (t) => {
  const d = await poolDestination(t);
  // Test instrument: a SOCKS5 server whose every CONNECT reply is 0x01 (general failure).
  const broken = await startScriptedSocks(Buffer.from([5, 1, 0, 1, 0, 0, 0, 0, 0, 0]), '127.0.0.159');
  t.after(() => broken.close());
  const [good] = await poolMembers(t, ['127.0.0.160']);
  const p = createPoolOutbound('f', pool('failover', { ban_after: 2 }), { members: specs([broken, good!]), log: silent });
  t.after(() => p.close());
  for (let i = 0; i < 2; i++) assert.equal(await peerVia(p, d), '127.0.0.160', 'retried on the other member');
  assert.deepEqual([p.stats()[0]!.healthy, p.stats()[0]!.consecutiveFailures], [false, 2], 'ejected after ban_after such answers');
  assert.equal(await peerVia(p, d), '127.0.0.160');
  assert.equal(p.stats()[0]!.attempts, 2, 'not tried while ejected');
});

test('a 0x01 from every member is the destination\'s answer: no member is counted against', async (t) => {
  const d = await poolDestination(t);
  const a = await startScriptedSocks(Buffer.from([5, 1, 0, 1, 0, 0, 0, 0, 0, 0]), '127.0.0.161');
  t.after(() => a.close());
  const b = await startScriptedSocks(Buffer.from([5, 1, 0, 1, 0, 0, 0, 0, 0, 0]), '127.0.0.162');
  t.after(() => b.close());
  const p = createPoolOutbound('f', pool('round-robin', { ban_after: 1, max_attempts: 2 }), { members: specs([a, b]), log: silent });
  t.after(() => p.close());
  for (let i = 0; i < 3; i++) await assert.rejects(p.connect({ host: '127.0.0.1', port: d.port }, ctx()), /1|failure/i);
  assert.deepEqual(p.stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0], [true, 0]]);
});
