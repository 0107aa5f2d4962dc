import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { SocksClient } from 'socks';
import { closedPort, socks5Rep, startGateway } from '../helpers/index.js';
import { blackhole } from '../helpers/blackhole.js';
import { readAll, startDante, startDestination, startMicrosocks, startScriptedSocks } from '../helpers/upstreams.js';

/**
 * CONNECT through the gateway with a `socks` client: the destination's greeting, or, when the
 * gateway refuses, the REP byte it sent (read again by a raw client: the `socks` package keeps
 * only a message).
 */
async function through(port: number, destPort: number, user?: string): Promise<string | number> {
  const creds = user ? { user, pass: 'pw' } : undefined;
  try {
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port, type: 5, ...(creds ? { userId: creds.user, password: creds.pass } : {}) },
      command: 'connect',
      destination: { host: '127.0.0.1', port: destPort },
      timeout: 5_000,
    });
    return (await readAll(socket)).trim();
  } catch {
    return socks5Rep(port, { host: '127.0.0.1', port: destPort }, creds);
  }
}

test('through the gateway: direct, one upstream, a two-hop chain, a bad password, replies from Dante', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const corp = await startDante({ host: '127.0.0.41' });
  t.after(() => corp.close());
  const strict = await startDante({ host: '127.0.0.47', block: ['127.0.0.1/32'] });
  t.after(() => strict.close());
  const refused = await closedPort();
  const egress = await startMicrosocks({ host: '127.0.0.42', user: 'gw', pass: 'right' });
  t.after(() => egress.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'direct', password: 'pw' }, { username: 'one', password: 'pw' }, { username: 'two', password: 'pw' }, { username: 'bad', password: 'pw' }, { username: 'ruled', password: 'pw' }] },
    upstreams: {
      corp: { type: 'socks5', host: corp.host, port: corp.port },
      egress: { type: 'socks5', host: egress.host, port: egress.port, username: 'gw', password: 'right', via: 'corp' },
      wrong: { type: 'socks5', host: egress.host, port: egress.port, username: 'gw', password: 'wrong' },
      strict: { type: 'socks5', host: strict.host, port: strict.port },
    },
    rules: [
      { name: 'one', users: ['one'], action: 'corp' },
      { name: 'two', users: ['two'], action: 'egress' },
      { name: 'bad', users: ['bad'], action: 'wrong' },
      { name: 'ruled', users: ['ruled'], action: 'strict' },
    ],
    default: 'direct',
  });
  t.after(() => gw.close());
  assert.equal(await through(gw.port, dest.port, 'direct'), 'hello 127.0.0.1');
  assert.equal(await through(gw.port, dest.port, 'one'), 'hello 127.0.0.41');
  assert.equal(await through(gw.port, dest.port, 'two'), 'hello 127.0.0.42');
  // Our own credentials refused by the upstream: 0x01, the gateway's fault (not 0x02).
  assert.equal(await through(gw.port, dest.port, 'bad'), 0x01);
  assert.match(String((await gw.accessLog((l) => l.user === 'bad'))?.error), /auth/i);
  // Dante's own replies pass through: its `socks block` rule (0x02), a refused port (0x05).
  assert.equal(await through(gw.port, dest.port, 'ruled'), 0x02);
  assert.equal(await through(gw.port, refused, 'one'), 0x05);
  assert.equal(await through(gw.port, dest.port, 'two'), 'hello 127.0.0.42', 'the gateway is still up');
});

test('through the gateway: a pool spreads requests and the access log names the member', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const a = await startMicrosocks({ host: '127.0.0.43', user: 'u', pass: 'secret' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.44' });
  t.after(() => b.close());
  const gw = await startGateway({
    upstreams: {
      crawl: { type: 'pool', strategy: 'round-robin', members: [`socks5://u:secret@${a.host}:${a.port}`, `socks5://${b.host}:${b.port}`] },
    },
    default: 'crawl',
  });
  t.after(() => gw.close());
  const seen = new Set<string | number>();
  for (let i = 0; i < 4; i++) seen.add(await through(gw.port, dest.port));
  assert.deepEqual([...seen].sort(), ['hello 127.0.0.43', 'hello 127.0.0.44']);
  const line = await gw.accessLog((l) => l.member === `socks5://u@${a.host}:${a.port}`);
  assert.ok(line, 'an access-log line names the member');
  assert.ok(!JSON.stringify(gw.logs).includes('secret'), 'no password in the logs');
});

test('through the gateway: a pool member killed mid-run is retried around and comes back', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const a = await startMicrosocks({ host: '127.0.0.45' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.46' });
  t.after(() => b.close());
  const gw = await startGateway({
    upstreams: {
      crawl: {
        type: 'pool',
        strategy: 'round-robin',
        members: [`socks5://${a.host}:${a.port}`, `socks5://${b.host}:${b.port}`],
        health_check: { interval: '100ms', timeout: '1s', target: `127.0.0.1:${dest.port}` },
      },
    },
    default: 'crawl',
  });
  t.after(() => gw.close());
  await b.close();
  for (let i = 0; i < 8; i++) assert.equal(await through(gw.port, dest.port), 'hello 127.0.0.45', `request ${i}`);
  const back = await startMicrosocks({ host: b.host, port: b.port });
  t.after(() => back.close());
  let returned = false;
  for (let i = 0; i < 100 && !returned; i++) {
    returned = (await through(gw.port, dest.port)) === 'hello 127.0.0.46';
    if (!returned) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(returned, 'the member is used again once its health check passes');
});

test('through the gateway: a chain whose first hop is a pool names the pool member in the access log, when the last hop connects and when it refuses', async (t) => {
  const allowed = await startDestination();
  t.after(() => allowed.close());
  const blocked = await startDestination('127.0.0.140');
  t.after(() => blocked.close());
  const last = await startDante({ host: '127.0.0.139', block: ['127.0.0.140/32'] });
  t.after(() => last.close());
  const member = await startMicrosocks({ host: '127.0.0.29' });
  t.after(() => member.close());
  const dead = await closedPort('127.0.0.30');
  const gw = await startGateway({
    upstreams: {
      hop: { type: 'pool', strategy: 'failover', members: [`socks5://127.0.0.30:${dead}`, `socks5://${member.host}:${member.port}`] },
      last: { type: 'socks5', host: last.host, port: last.port, via: 'hop' },
    },
    default: 'last',
  });
  t.after(() => gw.close());
  const carrier = `socks5://${member.host}:${member.port}`;
  assert.equal(await through(gw.port, allowed.port), 'hello 127.0.0.139');
  assert.equal((await gw.accessLog((l) => l.rep === 0))?.member, carrier, 'a connected chain names the member that carried it');
  // Dante's `socks block`, reached through the member: its 0x02 is the answer, the member still the carrier.
  assert.equal(await socks5Rep(gw.port, { host: blocked.host, port: blocked.port }), 0x02);
  assert.equal((await gw.accessLog((l) => l.rep === 0x02))?.member, carrier, 'a refused chain names the member it went through');
});

test('a pool whose member is a chain through another pool names its own member in the access log, the one its stats and bans know', async (t) => {
  const allowed = await startDestination();
  t.after(() => allowed.close());
  const blocked = await startDestination('127.0.0.231');
  t.after(() => blocked.close());
  const exit = await startDante({ host: '127.0.0.228', block: ['127.0.0.231/32'] });
  t.after(() => exit.close());
  const entry = await startMicrosocks({ host: '127.0.0.229' });
  t.after(() => entry.close());
  const gw = await startGateway({
    upstreams: {
      entry: { type: 'pool', members: [`socks5://${entry.host}:${entry.port}`] },
      exit: { type: 'socks5', host: exit.host, port: exit.port, via: 'entry' },
      crawl: { type: 'pool', members: ['exit'] },
    },
    default: 'crawl',
  });
  t.after(() => gw.close());
  assert.equal(await through(gw.port, allowed.port), 'hello 127.0.0.228');
  assert.equal((await gw.accessLog((l) => l.rep === 0))?.member, 'exit', 'a connected request names the pool member it went through');
  assert.equal(await socks5Rep(gw.port, { host: blocked.host, port: blocked.port }), 0x02);
  assert.equal((await gw.accessLog((l) => l.rep === 0x02))?.member, 'exit', 'a refused request names the pool member that refused');
});

test('through the gateway: a chain with a silent hop times out naming that hop, not the healthy last one', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const first = await startMicrosocks({ host: '127.0.0.200' });
  t.after(() => first.close());
  const last = await startMicrosocks({ host: '127.0.0.201' });
  t.after(() => last.close());
  // Accepts and never answers: a hop that is up but silent.
  const mute = await startScriptedSocks({ host: '127.0.0.202', silent: true });
  t.after(() => mute.close());
  // Drops the SYN: a hop the one before it can never reach.
  const hole = await blackhole(t, '127.0.0.203');
  const users = ['silent_first', 'silent_middle', 'unreachable_middle'];
  const gw = await startGateway({
    auth: { users: users.map((username) => ({ username, password: 'pw' })) },
    limits: { connect_timeout: '500ms' },
    upstreams: {
      first: { type: 'socks5', host: first.host, port: first.port },
      mute: { type: 'socks5', host: mute.host, port: mute.port },
      mute_via_first: { type: 'socks5', host: mute.host, port: mute.port, via: 'first' },
      hole_via_first: { type: 'socks5', host: '127.0.0.203', port: hole, via: 'first' },
      silent_first: { type: 'socks5', host: last.host, port: last.port, via: 'mute' },
      silent_middle: { type: 'socks5', host: last.host, port: last.port, via: 'mute_via_first' },
      unreachable_middle: { type: 'socks5', host: last.host, port: last.port, via: 'hole_via_first' },
    },
    rules: users.map((name) => ({ name, users: [name], action: name })),
    default: 'direct',
  });
  t.after(() => gw.close());
  // A hop that took the connection and said nothing is "silent", one never reached "unreachable".
  const blamed = [
    ['silent_first', 'mute', 'silent'],
    ['silent_middle', 'mute_via_first', 'silent'],
    ['unreachable_middle', 'hole_via_first', 'unreachable'],
  ] as const;
  for (const [user, hop, state] of blamed) {
    assert.equal(await through(gw.port, dest.port, user), 0x06, user);
    const error = String((await gw.accessLog((l) => l.user === user))?.error);
    assert.match(error, new RegExp(`upstream "${hop}" ${state}`), `${user}: ${error}`);
  }
  // The hop before the unreachable one reached nothing in time: named as waiting on that hop's address.
  assert.match(String((await gw.accessLog((l) => l.user === 'unreachable_middle'))?.error), /upstream "first" to 127\.0\.0\.203:/);
  assert.deepEqual(dest.peers, []);
});
