// A pool member's health through real members: a held listener (connections that wait until
// the test drops them), a closed port, microsocks started on that port later. The pool's own
// clock is injected, so backoffs are read without waiting them out.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import type { PoolConfig } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { memberSpec } from '../../src/outbound/pool-member.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { AbortedError } from '../../src/outbound/deadline.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import { isUpstreamFault } from '../../src/outbound/socks5-errors.js';
import type { Outbound, OutboundContext } from '../../src/outbound/types.js';
import { startHeldListener } from '../helpers/instruments.js';
import { freePort, readAll, startDestination, startMicrosocks } from '../helpers/upstreams.js';

const silent = pino({ level: 'silent' });
const ctx = (signal = new AbortController().signal): OutboundContext => ({ signal, log: silent, sessionKey: 'k' });
const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy: 'round-robin', max_attempts: 1 };
const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });

/** A SOCKS5 member at `host:port`; its connect timeout outlasts any test, so only the member or the client ends a request. */
function member(host: string, port: number): Outbound {
  return createSocks5Outbound(`socks5://${host}:${port}`, { type: 'socks5', host, port, remote_dns: true }, { dns, connectTimeout: 600_000 });
}

/** A member nothing listens for: every connect is refused (an upstream fault). */
async function deadMember(host: string): Promise<Outbound> {
  return member(host, await freePort(host));
}

async function destination(t: TestContext): Promise<{ host: string; port: number }> {
  const d = await startDestination();
  t.after(() => d.close());
  return d;
}

test('requests begun before an ejection neither stretch its backoff nor end its one trial', async (t) => {
  let now = 1_000_000;
  const held = await startHeldListener('127.0.0.170');
  t.after(() => held.close());
  const m = member(held.host, held.port);
  const p = createPoolOutbound('held', cfg, { members: [memberSpec(m)], log: silent, now: () => now });
  t.after(() => p.close());
  const requests: Array<{ result: Promise<unknown>; client: AbortController }> = [];
  /** One request through the pool; returns once the member holds its connection (the i-th accepted is request i's). */
  const start = async (): Promise<void> => {
    const client = new AbortController();
    requests.push({ client, result: p.connect({ host: '127.0.0.1', port: 9 }, ctx(client.signal)).catch((e: unknown) => e) });
    await held.accepting(requests.length);
  };
  /** The member drops request i's connection; returns once the pool has settled it. */
  const fail = async (i: number): Promise<void> => {
    held.accepted[i]!.destroy();
    const err = await requests[i]!.result;
    assert.ok(isUpstreamFault(err), `request ${i}: ${String(err)}`);
  };
  for (let i = 0; i < 8; i++) await start(); // all begin while the member is healthy
  for (let i = 0; i < 3; i++) await fail(i);
  assert.equal(p.stats()[0]!.healthy, false, 'three faults eject');
  for (let i = 3; i < 7; i++) await fail(i);
  assert.equal(p.stats()[0]!.ejectedForMs, 5_000, 'late answers of old requests are not failed trials');

  now += 5_000;
  assert.equal(p.pick('k'), m.name, 'due for its trial');
  await start(); // the trial
  assert.equal(p.pick('k'), undefined, 'one trial at a time');
  requests[7]!.client.abort(); // the last pre-ejection request: its client left
  assert.ok((await requests[7]!.result) instanceof AbortedError);
  assert.equal(p.pick('k'), undefined, 'the trial is still running');
  await fail(8); // the trial fails
  assert.equal(p.stats()[0]!.ejectedForMs, 10_000, 'a failed trial doubles the backoff');
  assert.equal(held.accepted.length, 9, 'one connection per request');
  assert.equal(p.stats()[0]!.active, 0);
});

test('a pool that inherits only dead members still says once when one is healthy again', async (t) => {
  let now = 1_000_000;
  const d = await destination(t);
  // Refused until microsocks starts on the port.
  const host = '127.0.0.171';
  const port = await freePort(host);
  const flaky = member(host, port);
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) });
  const before = createPoolOutbound('p', cfg, { members: [memberSpec(flaky)], log, now: () => now });
  for (let i = 0; i < 3; i++) await before.connect({ host: d.host, port: d.port }, ctx()).catch(() => {});
  assert.deepEqual(lines, ['pool member ejected', 'pool has no healthy member']);
  await before.close();

  const after = createPoolOutbound('p', cfg, { members: [memberSpec(flaky)], log, now: () => now, inherit: before.memory() });
  t.after(() => after.close());
  now += 5_000;
  const up = await startMicrosocks({ host, port });
  t.after(() => up.close());
  const conn = await after.connect({ host: d.host, port: d.port }, ctx());
  assert.equal((await readAll(conn.socket)).trim(), `hello ${host}`, 'through the member, now up');
  conn.release?.();
  assert.deepEqual(lines.slice(2), ['pool member re-admitted', 'pool has a healthy member again']);
});

test('a reload keeps a member\'s failures but applies the new ban_after', async () => {
  const now = 1_000_000;
  const dead = await deadMember('127.0.0.172');
  const before = createPoolOutbound('p', { ...cfg, ban_after: 5 }, { members: [memberSpec(dead)], log: silent, now: () => now });
  for (let i = 0; i < 2; i++) await before.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch(() => {});
  assert.equal(before.stats()[0]?.healthy, true, 'two failures of five');
  await before.close();
  const after = createPoolOutbound('p', { ...cfg, ban_after: 3 }, { members: [memberSpec(dead)], log: silent, now: () => now, inherit: before.memory() });
  await after.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch(() => {});
  assert.deepEqual([after.stats()[0]?.consecutiveFailures, after.stats()[0]?.healthy], [3, false], 'the third failure ejects under ban_after: 3');
  await after.close();
});
