import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DURATION_PATTERN, durationMs, parseDuration } from '../../src/config/duration.js';
import { parseConfig } from '../../src/config/load.js';

test('durations convert to milliseconds', () => {
  assert.equal(parseDuration('0s'), 0);
  assert.equal(parseDuration('500ms'), 500);
  assert.equal(parseDuration('10s'), 10_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('1h'), 3_600_000);
  assert.equal(parseDuration('90m'), 5_400_000);
});

test('anything else is not a duration', () => {
  for (const bad of ['', '10', 's', '1.5s', '-1s', '10 s', '10S', '1d', '1h30m', ' 1s', '1s ', '99999999999999999999h']) {
    assert.equal(parseDuration(bad), undefined, bad);
  }
  assert.throws(() => durationMs('1d'), RangeError);
});

test('the schema pattern and the parser agree', () => {
  const re = new RegExp(DURATION_PATTERN);
  for (const s of ['0s', '500ms', '5m', '1h', '1.5s', '10', '1d']) assert.equal(re.test(s), parseDuration(s) !== undefined, s);
});

test('every duration field of the config is converted', () => {
  const c = parseConfig(
    `limits: { handshake_timeout: 1s, connect_timeout: 2s, idle_timeout: 3m, udp_idle_timeout: 4m, bind_timeout: 5s, drain_timeout: 250ms }
dns: { min_ttl: 1s, max_ttl: 2h, negative_ttl: 7s, timeout: 800ms }
upstreams:
  p: { type: pool, members: ["socks5://127.0.0.1:1"], health_check: { interval: 1m, timeout: 1500ms, target: "a:1" } }
`,
    'cfg.yaml',
    {},
  );
  assert.deepEqual(
    [c.limits.handshake_timeout, c.limits.connect_timeout, c.limits.idle_timeout, c.limits.udp_idle_timeout, c.limits.bind_timeout, c.limits.drain_timeout],
    [1_000, 2_000, 180_000, 240_000, 5_000, 250],
  );
  assert.deepEqual([c.dns.min_ttl, c.dns.max_ttl, c.dns.negative_ttl, c.dns.timeout], [1_000, 7_200_000, 7_000, 800]);
  const pool = c.upstreams['p'];
  assert.ok(pool?.type === 'pool');
  assert.deepEqual(pool.health_check, { interval: 60_000, timeout: 1_500, target: 'a:1' });
});
