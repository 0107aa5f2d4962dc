// The limit bookkeeping on its own: which refusals are logged (an injected clock), and the
// slots a connection takes and gives back, HTTP keep-alive included.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { LimitError } from '../../src/errors.js';
import { Metrics } from '../../src/observe/metrics.js';
import { parseConfig } from '../../src/config/load.js';
import { Limits, RefusalLog } from '../../src/server/limits.js';
import type { ProxyRequest } from '../../src/server/request.js';
import type { SharedLimits } from '../../src/server/shared-limits.js';
import { memoryLogger } from '../helpers/index.js';

test('RefusalLog: one line per client IP per second, each IP on its own clock', () => {
  let now = 0;
  const log = new RefusalLog(() => now);
  assert.equal(log.shouldLog('10.0.0.1'), true);
  assert.equal(log.shouldLog('10.0.0.1'), false);
  assert.equal(log.shouldLog('10.0.0.2'), true, 'another IP is logged');
  now = 999;
  assert.equal(log.shouldLog('10.0.0.1'), false);
  now = 1_000;
  assert.equal(log.shouldLog('10.0.0.1'), true, 'a second later, again');
  assert.equal(log.shouldLog('10.0.0.2'), true);
});

test('RefusalLog: the table of IPs is bounded; stale entries are pruned at most once a second', () => {
  let now = 0;
  const log = new RefusalLog(() => now);
  for (let i = 0; i < 4_096; i++) assert.equal(log.shouldLog(`ip${i}`), true);
  assert.equal(log.size, 4_096);
  assert.equal(log.shouldLog('new'), false, 'full, nothing stale: not logged (still counted by the caller)');
  now = 500;
  assert.equal(log.shouldLog('new'), false);
  now = 1_000;
  assert.equal(log.shouldLog('new'), true, 'stale entries pruned, room again');
  assert.equal(log.size, 1);
});

const TEXT = `listen: [{ host: 127.0.0.1, port: 0 }]
auth:
  users:
    - { username: alice, password: a, max_connections: 2, bandwidth: 1000B/s }
    - { username: bob, password: b }
limits: { max_connections_per_source: 3 }
`;
const CONFIG = parseConfig(TEXT, '/tmp/limits-unit.yaml', {});

const request = (source: string, user?: string): ProxyRequest => ({
  protocol: 'socks5',
  command: 'connect',
  dest: { host: '127.0.0.1', port: 80 },
  params: {},
  sessionKey: user ?? source,
  source: { host: source, port: 1 },
  ...(user !== undefined ? { user } : {}),
});

function setup(): { limits: Limits; metrics: Metrics; logs: Array<Record<string, unknown>> } {
  const metrics = new Metrics();
  const { log, logs } = memoryLogger();
  return { limits: new Limits(metrics, log, CONFIG), metrics, logs };
}

test('a user slot: refused past max_connections (counted, logged), given back once however often release runs', async () => {
  const { limits, metrics, logs } = setup();
  const [a, b, c] = [limits.connection(), limits.connection(), limits.connection()];
  a.admit(request('10.0.0.1', 'alice'), CONFIG);
  b.admit(request('10.0.0.2', 'alice'), CONFIG);
  assert.throws(
    () => c.admit(request('10.0.0.3', 'alice'), CONFIG),
    (err: unknown) => err instanceof LimitError && err.limit === 'user_max_connections' && !err.gatewayFull,
  );
  assert.equal(limits.sources.get('10.0.0.3'), 0, 'a refused request takes no slot');
  a.release();
  a.release();
  assert.equal(limits.users.get('alice'), 1, 'released once');
  c.admit(request('10.0.0.3', 'alice'), CONFIG);
  assert.equal(limits.users.get('alice'), 2);
  const counted = (await metrics.limitRefusals.get()).values.find((v) => v.labels.limit === 'user_max_connections');
  assert.equal(counted?.value, 1);
  assert.equal(logs.filter((l) => l.msg === 'client refused by a limit' && l.client === '10.0.0.3').length, 1);
  b.release();
  c.release();
  assert.equal(limits.users.size, 0);
  assert.equal(limits.sources.size, 0);
});

test('a source slot is held once per connection; a keep-alive connection moves its user slot and bucket', () => {
  const { limits } = setup();
  const conn = limits.connection();
  conn.admit(request('10.0.0.1', 'alice'), CONFIG);
  conn.admit(request('10.0.0.1', 'alice'), CONFIG); // the next request on the same connection
  assert.equal(limits.sources.get('10.0.0.1'), 1);
  assert.equal(limits.users.get('alice'), 1);
  assert.ok(conn.throttle, 'alice has a bandwidth bucket');
  assert.equal(conn.throttle.rate, 1000);
  conn.admit(request('10.0.0.1', 'bob'), CONFIG);
  assert.equal(limits.users.get('alice'), 0);
  assert.equal(limits.users.get('bob'), 1);
  assert.equal(conn.throttle, undefined, 'bob is unlimited');
  assert.equal(limits.bandwidth.size, 0, "alice's bucket went with her last connection");
  conn.admit(request('10.0.0.1'), CONFIG); // anonymous
  assert.equal(limits.users.size, 0);
  conn.release();
  assert.equal(limits.sources.size, 0);
});

test('max_connections_per_source counts per IP; connections of one user share one bucket', () => {
  const { limits } = setup();
  const conns = Array.from({ length: 3 }, () => limits.connection());
  for (const c of conns) c.admit(request('10.0.0.9'), CONFIG);
  assert.throws(() => limits.connection().admit(request('10.0.0.9'), CONFIG), (err: unknown) => err instanceof LimitError && err.limit === 'max_connections_per_source');
  limits.connection().admit(request('10.0.0.8'), CONFIG);
  const [x, y] = [limits.connection(), limits.connection()];
  x.admit(request('10.0.0.7', 'alice'), CONFIG);
  y.admit(request('10.0.0.6', 'alice'), CONFIG);
  assert.equal(x.throttle, y.throttle);
  conns[0]!.release();
  limits.connection().admit(request('10.0.0.9'), CONFIG);
});

test("a reload retunes a user's one bucket; a request that began on the config before it takes that bucket at the live rate", () => {
  const { limits } = setup();
  const open = limits.connection();
  open.admit(request('10.0.0.1', 'alice'), CONFIG);
  assert.equal(open.throttle?.rate, 1000);
  const reloaded = parseConfig(TEXT.replace('1000B/s', '2000B/s').replace('{ username: bob, password: b }', '{ username: bob, password: b, bandwidth: 500B/s }'), '/tmp/limits-unit.yaml', {});
  limits.reconfigure(reloaded);
  assert.equal(open.throttle?.rate, 2000, 'the open connection is held to the new rate');
  const late = limits.connection();
  late.admit(request('10.0.0.2', 'alice'), CONFIG); // its handshake began before the reload
  assert.equal(late.throttle, open.throttle, 'one bucket');
  assert.equal(late.throttle?.rate, 2000, 'at the live rate, not the one of its config');
  const keptAlive = limits.connection();
  keptAlive.admit(request('10.0.0.3', 'bob'), CONFIG);
  assert.equal(keptAlive.throttle?.rate, 500, 'bob has a bandwidth now');
  limits.reconfigure(CONFIG);
  keptAlive.admit(request('10.0.0.3', 'bob'), CONFIG); // its next request
  assert.equal(keptAlive.throttle, undefined, 'and none once a reload took it away');
  for (const c of [open, late, keptAlive]) c.release();
  assert.equal(limits.bandwidth.size, 0);
});

/** A ledger that grants every slot at once, and notes each request's questions (SharedLimits.asking) in turn. */
function grantingLedger(): { shared: SharedLimits; asked: string[][] } {
  const asked: string[][] = [];
  const shared: SharedLimits = {
    asking: () => {
      const questions: string[] = [];
      asked.push(questions);
      return {
        take: (key) => (questions.push(key), Promise.resolve(true)),
        bandwidthHolders: (user) => (questions.push(`holders ${user}`), Promise.resolve(0)),
      };
    },
    give: () => {},
    adopt: () => {},
    loginFailed: () => {},
    onLoginFailed: () => {},
    holdBandwidth: () => {},
    onBandwidthShare: () => {},
  };
  return { shared, asked };
}

test("an HTTP request's questions to the instance, at its head and after its login, are one request's; a CONNECT after a refused one asks its own", async () => {
  const { shared, asked } = grantingLedger();
  const limits = new Limits(new Metrics(), memoryLogger().log, CONFIG, new RefusalLog(), shared);
  const forwarded = limits.connection();
  await forwarded.admitSource('10.0.0.1', CONFIG);
  const get = { ...request('10.0.0.1', 'alice'), protocol: 'http' as const };
  forwarded.carryTo(get);
  await forwarded.admit(get, CONFIG);
  assert.deepEqual(asked, [['source 10.0.0.1', 'user alice', 'holders alice']], 'one wait for the whole request');
  // A request refused after its head (a 407), then a CONNECT on the same connection.
  const kept = limits.connection();
  await kept.admitSource('10.0.0.2', CONFIG);
  await kept.admit({ ...request('10.0.0.2', 'alice'), protocol: 'http' }, CONFIG);
  assert.deepEqual(asked.slice(1), [['source 10.0.0.2'], ['user alice']], "the CONNECT waits on its own, not on what the refused request left");
});
