import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { LoginThrottle } from '../../src/server/login-throttle.js';
import { Semaphore } from '../../src/semaphore.js';

/** A clock the test moves by hand: windows and blocks are checked without waiting. */
function clock(): { now: () => number; advance(ms: number): void } {
  let t = 1_000_000;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

test('failures below the limit get a growing delay; the limit blocks the address for `block`', () => {
  const c = clock();
  const th = new LoginThrottle({ max: 4, window: 60_000, block: 300_000 }, { now: c.now });
  const delays = [th.failed('192.0.2.1'), th.failed('192.0.2.1'), th.failed('192.0.2.1')];
  assert.deepEqual(delays, [100, 200, 400]);
  assert.equal(th.blocked('192.0.2.1'), false);
  assert.equal(th.failed('192.0.2.1'), 0, 'the failure that reaches the limit is answered at once');
  assert.equal(th.blocked('192.0.2.1'), true);
  assert.equal(th.blocked('192.0.2.2'), false, 'another address is not affected');
  c.advance(299_999);
  assert.equal(th.blocked('192.0.2.1'), true);
  c.advance(1);
  assert.equal(th.blocked('192.0.2.1'), false, 'the block ends');
  assert.equal(th.failed('192.0.2.1'), 100, 'and counting starts over');
});

test('failures older than the window no longer count', () => {
  const c = clock();
  const th = new LoginThrottle({ max: 3, window: 10_000, block: 60_000 }, { now: c.now });
  th.failed('192.0.2.1');
  th.failed('192.0.2.1');
  c.advance(10_001);
  assert.equal(th.failed('192.0.2.1'), 100, 'the two old failures fell out of the window');
  assert.equal(th.blocked('192.0.2.1'), false);
});

test('an IPv6 client counts per /64; IPv4-mapped addresses count as the IPv4 address', () => {
  const th = new LoginThrottle({ max: 2, window: 60_000, block: 60_000 });
  th.failed('2001:db8:1:2::1');
  th.failed('2001:db8:1:2:ffff::9');
  assert.equal(th.blocked('2001:db8:1:2::77'), true);
  assert.equal(th.blocked('2001:db8:1:3::1'), false);
  th.failed('::ffff:192.0.2.9');
  th.failed('192.0.2.9');
  assert.equal(th.blocked('192.0.2.9'), true);
});

test('guard: a blocked address is refused without running the check, the delay is served, others pass', async () => {
  const th = new LoginThrottle({ max: 2, window: 60_000, block: 60_000 });
  let checks = 0;
  const wrong = async (): Promise<boolean> => {
    checks++;
    return false;
  };
  assert.equal(await th.guard('192.0.2.1', wrong), false);
  assert.equal(await th.guard('192.0.2.1', wrong), false);
  assert.equal(checks, 2);
  assert.equal(await th.guard('192.0.2.1', async () => ++checks > 0), 'blocked', 'even a right password while blocked');
  assert.equal(checks, 2, 'and no check ran');
  assert.equal(await th.guard('192.0.2.2', async () => true), true);
});

test('guard: a burst of guesses from one address runs one check at a time and stops at the limit', async () => {
  const th = new LoginThrottle({ max: 3, window: 60_000, block: 60_000 });
  let running = 0;
  let most = 0;
  let checks = 0;
  const wrong = async (): Promise<boolean> => {
    checks++;
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, 5));
    running--;
    return false;
  };
  const results = await Promise.all(Array.from({ length: 10 }, () => th.guard('192.0.2.1', wrong)));
  assert.deepEqual(results, [false, false, false, ...new Array(7).fill('blocked')], 'the third failure blocks the rest');
  assert.equal(most, 1);
  assert.equal(checks, 3, 'the guesses queued behind the limit never ran');
});

test('guard: an address with nothing left to remember is forgotten, one inside its window or block is kept', async () => {
  const c = clock();
  const th = new LoginThrottle({ max: 3, window: 10_000, block: 60_000 }, { now: c.now });
  const right = async (): Promise<boolean> => true;
  const wrong = async (): Promise<boolean> => false;
  // Every client that ever logged in would otherwise hold an entry until MAX_SOURCES others pushed it out.
  for (let i = 0; i < 200; i++) assert.equal(await th.guard(`198.51.100.${i}`, right), true);
  assert.equal(th.size, 0, 'successful logins leave nothing behind');
  th.failed('192.0.2.1');
  assert.equal(await th.guard('192.0.2.1', right), true);
  assert.equal(th.size, 1, 'a failure inside the window is remembered across a success');
  c.advance(10_001);
  assert.equal(await th.guard('192.0.2.1', right), true);
  assert.equal(th.size, 0, 'and forgotten once it has left the window');
  for (let i = 0; i < 3; i++) th.failed('192.0.2.2');
  assert.equal(await th.guard('192.0.2.2', right), 'blocked');
  assert.equal(th.size, 1, 'a block is remembered');
  c.advance(60_000);
  assert.equal(await th.guard('192.0.2.2', right), true);
  assert.equal(th.size, 0, 'until it has ended');
  const slow = th.guard('192.0.2.3', () => new Promise((r) => setTimeout(() => r(true), 20)));
  const queued = th.guard('192.0.2.3', wrong);
  assert.equal(await slow, true);
  assert.equal(th.size, 1, 'a login queued behind keeps the address');
  assert.equal(await queued, false);
  assert.equal(th.size, 1, 'and so does its failure');
});

test('an address whose failures have left the window is forgotten as new addresses come, one still inside it is kept', async () => {
  const c = clock();
  const th = new LoginThrottle({ max: 3, window: 10_000, block: 60_000 }, { now: c.now });
  for (let i = 0; i < 100; i++) th.failed(`192.0.2.${i}`);
  for (let i = 0; i < 3; i++) th.failed('203.0.113.1');
  c.advance(5_000);
  th.failed('203.0.113.2');
  assert.equal(th.size, 102);
  c.advance(5_001);
  // Each new address looks at the least recently seen ones: no timer, no scan of the table.
  for (let i = 0; i < 60; i++) assert.equal(await th.guard(`198.51.100.${i}`, async () => true), true);
  assert.equal(th.size, 2, 'the block and the failure still inside the window are kept');
  assert.equal(th.blocked('203.0.113.1'), true);
  assert.equal(th.failed('203.0.113.2'), 200, 'the failure inside the window still counts');
});

test('a block in force among the least recently seen addresses does not keep idle ones behind it remembered', async () => {
  const c = clock();
  const th = new LoginThrottle({ max: 3, window: 10_000, block: 300_000 }, { now: c.now });
  // Two guessers blocked first, then silent: the least recently seen, for the whole block.
  for (const a of ['203.0.113.1', '203.0.113.2']) for (let i = 0; i < 3; i++) th.failed(a);
  for (let i = 0; i < 100; i++) th.failed(`192.0.2.${i}`);
  c.advance(10_001);
  for (let i = 0; i < 60; i++) assert.equal(await th.guard(`198.51.100.${i}`, async () => true), true);
  assert.equal(th.size, 2, 'the failures that left the window are forgotten; the blocks are kept');
  assert.equal(th.blocked('203.0.113.1'), true);
  assert.equal(th.blocked('203.0.113.2'), true);
});

test('Semaphore: at most `size` tasks at once, every task runs, a throwing task frees its slot', async () => {
  const sem = new Semaphore(2);
  let running = 0;
  let most = 0;
  const task = (i: number) => async (): Promise<number> => {
    most = Math.max(most, ++running);
    await new Promise((r) => setTimeout(r, 2));
    running--;
    if (i === 3) throw new Error('boom');
    return i;
  };
  const settled = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => sem.run(task(i))));
  assert.equal(most, 2);
  assert.deepEqual(
    settled.map((s) => s.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled'],
  );
  assert.equal(await sem.run(async () => 'after'), 'after');
});
