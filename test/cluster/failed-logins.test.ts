import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { FailedLogins } from '../../src/cluster/failed-logins.js';
import { LoginThrottle } from '../../src/server/login-throttle.js';

const LIMITS = { max: 3, window: 60_000, block: 300_000 };

test('failures given to a throttle that starts later block what was blocked, until the same moment, and count on', () => {
  let t = 1_000_000;
  const kept = new FailedLogins(() => LIMITS, () => t);
  const running = new LoginThrottle(LIMITS, { now: () => t });
  const fail = (source: string): void => {
    kept.add(source);
    running.failed(source);
    t += 1_000;
  };
  for (let i = 0; i < 3; i++) fail('192.0.2.1');
  for (let i = 0; i < 2; i++) fail('192.0.2.2');
  t += 10_000;
  const starting = new LoginThrottle(LIMITS, { now: () => t });
  const given = kept.inForce();
  assert.deepEqual(given.map(([s]) => s), ['192.0.2.1', '192.0.2.1', '192.0.2.1', '192.0.2.2', '192.0.2.2'], 'oldest first');
  for (const [source, ago] of given) starting.failed(source, ago);
  assert.equal(starting.blocked('192.0.2.1'), true, 'the block in force holds');
  assert.equal(starting.blocked('192.0.2.2'), false);
  assert.equal(starting.failed('192.0.2.2'), 0, 'the third failure blocks, as in the others');
  t += 300_000 - 10_000 - 3_000;
  assert.equal(running.blocked('192.0.2.1'), false);
  assert.equal(starting.blocked('192.0.2.1'), false, 'and ends when it ends there');
});

test('a failure older than window and block is no longer given', () => {
  let t = 0;
  const kept = new FailedLogins(() => LIMITS, () => t);
  kept.add('192.0.2.1');
  t += 60_000 + 300_000 - 1;
  assert.equal(kept.inForce().length, 1);
  t += 1;
  assert.deepEqual(kept.inForce(), []);
});
