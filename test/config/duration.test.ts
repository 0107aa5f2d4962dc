import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { DURATION_PATTERN, durationMs, parseDuration } from '../../src/config/duration.js';
import { parseConfig } from '../../src/config/load.js';
import { issuesOf } from '../helpers/config.js';

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

/** The issue lines of a config that must fail. */

test('a duration too long for a timer is a config error at its line, not a crash', () => {
  // setTimeout caps at 2^31-1 ms (24.8 days): beyond it Node fires after 1 ms instead.
  const issues = issuesOf('limits:\n  idle_timeout: 720h\n  drain_timeout: 99999999999999999999h\n');
  assert.ok(issues.some((i) => /^cfg\.yaml:2:17: limits\.idle_timeout: .*at most 596h/.test(i)), issues.join('\n'));
  assert.ok(issues.some((i) => /^cfg\.yaml:3:18: limits\.drain_timeout: .*at most 596h/.test(i)), issues.join('\n'));
  const hc = issuesOf('upstreams:\n  p: { type: pool, members: ["socks5://127.0.0.1:1"], health_check: { interval: 1000h, target: "a:1" } }\n');
  assert.ok(hc.some((i) => /^cfg\.yaml:2:81: upstreams\.p\.health_check\.interval: .*at most 596h/.test(i)), hc.join('\n'));
  assert.equal(parseConfig('limits: { idle_timeout: 596h }\ndns: { max_ttl: 1000h }\n', 'cfg.yaml', {}).limits.idle_timeout, 596 * 3_600_000);
});

test('a duration only compared with the clock, but past what milliseconds count exactly, is a config error at its line, not a crash', () => {
  const issues = issuesOf(
    'limits:\n  auth_failures: { window: 99999999999999999999h, block: 9999999999999h }\n' +
      'upstreams:\n  p: { type: pool, members: ["socks5://127.0.0.1:1"], sticky_lifetime: 9999999999999h }\n',
  );
  assert.ok(issues.some((i) => /^cfg\.yaml:2:28: limits\.auth_failures\.window: 99999999999999999999h is too long$/.test(i)), issues.join('\n'));
  assert.ok(issues.some((i) => /^cfg\.yaml:2:58: limits\.auth_failures\.block: 9999999999999h is too long$/.test(i)), issues.join('\n'));
  assert.ok(issues.some((i) => /^cfg\.yaml:4:72: upstreams\.p\.sticky_lifetime: 9999999999999h is too long$/.test(i)), issues.join('\n'));
  assert.equal(issues.length, 3, issues.join('\n'));
  const c = parseConfig('limits:\n  auth_failures: { window: 100000h, block: 100000h }\n', 'cfg.yaml', {});
  assert.equal(c.limits.auth_failures.block, 100_000 * 3_600_000);
});

test('0 is refused where it would fire at once, accepted where it means "off" or "do not cache"', () => {
  const issues = issuesOf(
    'limits: { handshake_timeout: 0s, connect_timeout: 0ms, bind_timeout: 0m }\ndns: { timeout: 0s }\n' +
      'upstreams:\n  p: { type: pool, members: ["socks5://127.0.0.1:1"], health_check: { interval: 0s, timeout: 0s, target: "a:1" } }\n',
  );
  for (const key of ['limits.handshake_timeout', 'limits.connect_timeout', 'limits.bind_timeout', 'dns.timeout', 'upstreams.p.health_check.interval', 'upstreams.p.health_check.timeout']) {
    assert.ok(issues.some((i) => i.includes(`: ${key}: must be longer than 0`)), `${key}:\n${issues.join('\n')}`);
  }
  const c = parseConfig('limits: { idle_timeout: 0s, udp_idle_timeout: 0s, drain_timeout: 0s }\ndns: { negative_ttl: 0s, min_ttl: 0s, max_ttl: 0s }\n', 'cfg.yaml', {});
  assert.deepEqual([c.limits.idle_timeout, c.limits.udp_idle_timeout, c.limits.drain_timeout, c.dns.negative_ttl], [0, 0, 0, 0]);
});

test("a pool's sticky_lifetime of 0 is refused: it would keep a session's member for good, not move it at once", () => {
  const issues = issuesOf('upstreams:\n  p: { type: pool, strategy: sticky, members: ["socks5://127.0.0.1:1"], sticky_lifetime: 0s }\n');
  assert.ok(issues.some((i) => /^cfg\.yaml:2:90: upstreams\.p\.sticky_lifetime: must be longer than 0/.test(i)), issues.join('\n'));
  const pool = parseConfig('upstreams:\n  p: { type: pool, members: ["socks5://127.0.0.1:1"], sticky_lifetime: 1ms }\n', 'cfg.yaml', {}).upstreams['p'];
  assert.equal(pool?.type === 'pool' ? pool.sticky_lifetime : undefined, 1);
});

test('auth_failures with a window or block of 0 is refused: it would turn the block off, saying how to do that', () => {
  const issues = issuesOf('limits:\n  auth_failures: { max: 5, window: 0s, block: 0ms }\n');
  assert.ok(issues.some((i) => /^cfg\.yaml:2:36: limits\.auth_failures\.window: must be longer than 0 .*give `max` a number/.test(i)), issues.join('\n'));
  assert.ok(issues.some((i) => /^cfg\.yaml:2:47: limits\.auth_failures\.block: must be longer than 0 .*give `max` a number/.test(i)), issues.join('\n'));
  const c = parseConfig('limits:\n  auth_failures: { max: 1000000000, window: 1ms, block: 1ms }\n', 'cfg.yaml', {});
  assert.deepEqual([c.limits.auth_failures.window, c.limits.auth_failures.block], [1, 1]);
});
