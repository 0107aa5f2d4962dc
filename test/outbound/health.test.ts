import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { Socket } from 'node:net';
import { pino } from 'pino';
import type { PoolConfig } from '../../src/config/types.js';
import { createPoolOutbound, memberSpec } from '../../src/outbound/pool.js';
import { AbortedError } from '../../src/outbound/deadline.js';
import { UpstreamUnreachableError } from '../../src/outbound/socks5-errors.js';
import type { Connection, Outbound, OutboundContext } from '../../src/outbound/types.js';

const silent = pino({ level: 'silent' });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log: silent, sessionKey: 'k' });
const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy: 'round-robin', max_attempts: 1 };

/** A member whose connects stay pending until the test settles them, oldest first. */
function heldMember(name: string): Outbound & { fail(err: Error): void; pending(): number } {
  const waiting: ((err: Error) => void)[] = [];
  return {
    name,
    connect: () => new Promise<Connection>((_resolve, reject) => void waiting.push(reject)),
    close: async () => {},
    fail: (err) => waiting.shift()!(err),
    pending: () => waiting.length,
  };
}

test('requests begun before an ejection neither stretch its backoff nor end its one trial', async () => {
  let now = 1_000_000;
  const m = heldMember('m');
  const p = createPoolOutbound('held', cfg, { members: [memberSpec(m)], log: silent, now: () => now });
  const results: Promise<unknown>[] = [];
  const start = (): void => void results.push(p.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch((e: unknown) => e));
  for (let i = 0; i < 8; i++) start(); // all begin while the member is healthy
  for (let i = 0; i < 3; i++) m.fail(new UpstreamUnreachableError('m', new Error('ECONNREFUSED')));
  await Promise.resolve();
  await new Promise((r) => setImmediate(r));
  assert.equal(p.stats()[0]!.healthy, false, 'three faults eject');
  for (let i = 0; i < 4; i++) m.fail(new UpstreamUnreachableError('m', new Error('ECONNREFUSED')));
  await new Promise((r) => setImmediate(r));
  assert.equal(p.stats()[0]!.ejectedForMs, 5_000, 'late answers of old requests are not failed trials');

  now += 5_000;
  assert.equal(p.pick('k'), 'm', 'due for its trial');
  start(); // the trial
  assert.equal(p.pick('k'), undefined, 'one trial at a time');
  m.fail(new AbortedError('old request')); // the last pre-ejection request: its client left
  await new Promise((r) => setImmediate(r));
  assert.equal(p.pick('k'), undefined, 'the trial is still running');
  m.fail(new UpstreamUnreachableError('m', new Error('ECONNREFUSED'))); // the trial fails
  await Promise.all(results);
  assert.equal(p.stats()[0]!.ejectedForMs, 10_000, 'a failed trial doubles the backoff');
  assert.equal(m.pending(), 0);
  assert.equal(p.stats()[0]!.active, 0);
  await p.close();
});

test('a pool that inherits only dead members still says once when one is healthy again', async () => {
  let now = 1_000_000;
  let up = false;
  const flaky: Outbound = {
    name: 'f',
    connect: () => (up ? Promise.resolve({ socket: new Socket() }) : Promise.reject(new UpstreamUnreachableError('f', new Error('ECONNREFUSED')))),
    close: async () => {},
  };
  const lines: string[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push((JSON.parse(s) as { msg: string }).msg) });
  const before = createPoolOutbound('p', cfg, { members: [memberSpec(flaky)], log, now: () => now });
  for (let i = 0; i < 3; i++) await before.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch(() => {});
  assert.deepEqual(lines, ['pool member ejected', 'pool has no healthy member']);
  await before.close();

  const after = createPoolOutbound('p', cfg, { members: [memberSpec(flaky)], log, now: () => now, inherit: before.memory() });
  now += 5_000;
  up = true;
  const conn = await after.connect({ host: '127.0.0.1', port: 9 }, ctx());
  conn.release?.();
  assert.deepEqual(lines.slice(2), ['pool member re-admitted', 'pool has a healthy member again']);
  await after.close();
});

test('a reload keeps a member\'s failures but applies the new ban_after', async () => {
  const now = 1_000_000;
  const dead: Outbound = { name: 'd', connect: () => Promise.reject(new UpstreamUnreachableError('d', new Error('ECONNREFUSED'))), close: async () => {} };
  const before = createPoolOutbound('p', { ...cfg, ban_after: 5 }, { members: [memberSpec(dead)], log: silent, now: () => now });
  for (let i = 0; i < 2; i++) await before.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch(() => {});
  assert.equal(before.stats()[0]?.healthy, true, 'two failures of five');
  await before.close();
  const after = createPoolOutbound('p', { ...cfg, ban_after: 3 }, { members: [memberSpec(dead)], log: silent, now: () => now, inherit: before.memory() });
  await after.connect({ host: '127.0.0.1', port: 9 }, ctx()).catch(() => {});
  assert.deepEqual([after.stats()[0]?.consecutiveFailures, after.stats()[0]?.healthy], [3, false], 'the third failure ejects under ban_after: 3');
  await after.close();
});
