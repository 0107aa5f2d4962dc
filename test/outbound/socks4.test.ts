import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { pino } from 'pino';
import type { PoolConfig, Socks4UpstreamConfig } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep } from '../../src/errors.js';
import { createHttpOutbound } from '../../src/outbound/http.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { createSocks4Outbound } from '../../src/outbound/socks4.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import { isUpstreamFault } from '../../src/outbound/socks5-errors.js';
import { resolverWithServer } from '../helpers/dns-server.js';
import { closedPort } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { readAll, specs, startDante, startScriptedSocks } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: { 'v6only.test': '::1', 'dest.test': '127.0.0.1' } });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });
const socks4 = (cfg: Partial<Socks4UpstreamConfig> & { host: string; port: number }): Socks4UpstreamConfig => ({ type: 'socks4', remote_dns: true, ...cfg });

/**
 * A scripted SOCKS4 server (not a real one): records each request as sent on the wire and
 * grants it without connecting anywhere, then writes "ok". Shows SOCKS4 vs SOCKS4a on the wire.
 */
async function startRecordingSocks4(host: string): Promise<{ host: string; port: number; requests: Buffer[]; close(): Promise<void> }> {
  const requests: Buffer[] = [];
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    let buf = Buffer.alloc(0);
    s.on('data', (b: Buffer) => {
      buf = Buffer.concat([buf, b]);
      const nulls = [...buf.subarray(8)].filter((x) => x === 0).length;
      const is4a = buf.length >= 8 && buf[4] === 0 && buf[5] === 0 && buf[6] === 0 && buf[7] !== 0;
      if (buf.length < 9 || nulls < (is4a ? 2 : 1)) return;
      requests.push(buf);
      s.end(Buffer.concat([Buffer.from([0, 0x5a, 0, 0, 0, 0, 0, 0]), Buffer.from('ok')]));
    });
  });
  return { host, requests, ...(await listenTracked(srv, host)) };
}

test('SOCKS4a sends the name, SOCKS4 resolves here and sends IPv4; an IPv6-only name or address gets 0x08', async (t) => {
  const rec = await startRecordingSocks4('127.0.0.71');
  t.after(() => rec.close());
  const deps = { dns, connectTimeout: 3_000 };
  const a = createSocks4Outbound('4a', socks4({ host: rec.host, port: rec.port, username: 'crawler' }), deps);
  const conn = await a.connect({ host: 'dest.test', port: 8080 }, ctx());
  assert.equal(await readAll(conn.socket), 'ok');
  conn.release?.();
  // VN CD DSTPORT 0.0.0.x USERID NUL HOST NUL (SOCKS4a)
  assert.deepEqual(rec.requests[0], Buffer.concat([Buffer.from([4, 1, 0x1f, 0x90, 0, 0, 0, 1]), Buffer.from('crawler\0dest.test\0')]));

  const plain = createSocks4Outbound('4', socks4({ host: rec.host, port: rec.port, remote_dns: false }), deps);
  const second = await plain.connect({ host: 'dest.test', port: 8080 }, ctx());
  assert.equal(await readAll(second.socket), 'ok');
  second.release?.();
  assert.deepEqual(rec.requests[1], Buffer.from([4, 1, 0x1f, 0x90, 127, 0, 0, 1, 0]));

  for (const [out, host] of [[plain, 'v6only.test'], [a, '::1'], [plain, '::1']] as const) {
    await assert.rejects(out.connect({ host, port: 80 }, ctx()), (e: unknown) => e instanceof GatewayError && e.rep === Rep.ADDRESS_TYPE_NOT_SUPPORTED, host);
  }
  assert.equal(rec.requests.length, 2, 'nothing was sent for the IPv6 destinations');
});

test('capabilities: socks4 has BIND (not UDP), chained too; http has neither', () => {
  const deps = { dns, connectTimeout: 1_000 };
  const direct = createSocks4Outbound('d', socks4({ host: '127.0.0.1', port: 1 }), deps);
  assert.equal(typeof direct.bind, 'function');
  assert.equal(direct.openUdp, undefined);
  const chained = createSocks4Outbound('c', socks4({ host: '127.0.0.1', port: 1 }), { ...deps, via: direct });
  assert.equal(typeof chained.bind, 'function', 'BIND goes through a chain (its peer connects to the last upstream)');
  assert.equal(chained.openUdp, undefined);
  const http = createHttpOutbound('h', { type: 'http', host: '127.0.0.1', port: 1, tls: false, remote_dns: true }, deps);
  assert.ok(!('bind' in http) && !('openUdp' in http));
  // A pool offers a command when some member can carry it (and then only those are tried).
  const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'http', strategy: 'round-robin', ban_after: 3 };
  const mixed = createPoolOutbound('mixed', cfg, { members: specs([http, direct]), log });
  assert.equal(typeof mixed.bind, 'function');
  assert.equal(mixed.openUdp, undefined);
  const httpOnly = createPoolOutbound('http-only', cfg, { members: specs([http]), log });
  assert.equal(httpOnly.bind, undefined);
});

test('BIND through a SOCKS4 upstream (Dante): it listens, the peer connects there, bytes flow', async (t) => {
  const dante = await startDante({ host: '127.0.0.72' });
  t.after(() => dante.close());
  const out = createSocks4Outbound('dante4', socks4({ host: dante.host, port: dante.port, remote_dns: false }), { dns, connectTimeout: 3_000 });
  const handle = await out.bind!({ host: '127.0.0.1', port: 0 }, ctx());
  t.after(() => handle.close());
  assert.notEqual(handle.listening.port, 0);
  const listenHost = handle.listening.host === '0.0.0.0' ? dante.host : handle.listening.host;
  const peer = connect({ host: listenHost, port: handle.listening.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const { socket, peer: from } = await handle.accepted();
  t.after(() => socket.destroy());
  assert.equal(from.host, '127.0.0.1');
  peer.write('hello binder');
  socket.resume();
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'hello binder');
});

test('a SOCKS4 upstream\'s 0x5B (Dante, for a refused port) is 0x01 to the client, and the error says what the upstream answered', async (t) => {
  const dante = await startDante({ host: '127.0.0.76' });
  t.after(() => dante.close());
  const port = await closedPort();
  for (const remote_dns of [true, false]) {
    const out = createSocks4Outbound('dante4', socks4({ host: dante.host, port: dante.port, remote_dns }), { dns, connectTimeout: 3_000 });
    await assert.rejects(out.connect({ host: remote_dns ? 'localhost' : '127.0.0.1', port }, ctx()), (e: unknown) => {
      assert.ok(e instanceof GatewayError);
      assert.equal(e.rep, Rep.GENERAL_FAILURE);
      // "replied 1" alone reads as a SOCKS5 REP the upstream never sent.
      assert.equal(e.message, 'upstream "dante4" replied 1: answered with SOCKS4 0x5B (rejected or failed)');
      return true;
    });
  }
});

test('remote_dns: false with a name server that never answers: connect_timeout bounds the lookup, and the proxy is not blamed', async (t) => {
  const { dns: slow } = await resolverWithServer(t, { 'mute.test': { silent: true } }, { timeout: 10_000 });
  const dante = await startDante({ host: '127.0.0.1' });
  t.after(() => dante.close());
  const out = createSocks4Outbound('s4', socks4({ host: dante.host, port: dante.port, remote_dns: false }), { dns: slow, connectTimeout: 500 });
  // The resolver's own timeout ends the lookup with a DNS error, not a connect timeout.
  const settled = await out.connect({ host: 'mute.test', port: 80 }, ctx()).then(
    () => 'connected',
    (e: unknown) => e,
  );
  assert.ok(settled instanceof GatewayError, String(settled));
  assert.equal(settled.code, 'GW_ERR_CONNECT_TIMEOUT', 'ended by connect_timeout, not by the resolver\'s timeout');
  assert.equal(isUpstreamFault(settled), false, 'the proxy was never asked anything');
  assert.equal(out.stats().healthy, true);
});

test('BIND with remote_dns: false and a name server that never answers: connect_timeout bounds the lookup as it does CONNECT\'s, and the proxy is not blamed', async (t) => {
  const { dns: slow } = await resolverWithServer(t, { 'mute.test': { silent: true } }, { timeout: 10_000 });
  const dante = await startDante({ host: '127.0.0.1' });
  t.after(() => dante.close());
  const out = createSocks4Outbound('s4', socks4({ host: dante.host, port: dante.port, remote_dns: false }), { dns: slow, connectTimeout: 500 });
  const settled = await out.bind!({ host: 'mute.test', port: 0 }, ctx()).then(
    (handle) => {
      handle.close();
      return 'bound';
    },
    (e: unknown) => e,
  );
  assert.ok(settled instanceof GatewayError, String(settled));
  assert.equal(settled.code, 'GW_ERR_CONNECT_TIMEOUT', 'ended by connect_timeout, not by the resolver\'s timeout');
  assert.equal(settled.rep, Rep.TTL_EXPIRED);
  assert.equal(isUpstreamFault(settled), false, 'the proxy was never asked anything');
});

test('an IPv4-mapped IPv6 address (::ffff:127.0.0.1, in any spelling) goes to a SOCKS4 upstream as the IPv4 address it is', async (t) => {
  const rec = await startRecordingSocks4('127.0.0.72');
  t.after(() => rec.close());
  for (const remote_dns of [true, false]) {
    const out = createSocks4Outbound('4', socks4({ host: rec.host, port: rec.port, remote_dns }), { dns, connectTimeout: 3_000 });
    for (const host of ['::ffff:127.0.0.1', '::FFFF:7f00:1']) {
      const conn = await out.connect({ host, port: 8080 }, ctx());
      assert.equal(await readAll(conn.socket), 'ok');
      conn.release?.();
      assert.deepEqual(rec.requests.at(-1), Buffer.from([4, 1, 0x1f, 0x90, 127, 0, 0, 1, 0]), host);
    }
  }
});

test('a pool passes over a socks4 member for an IPv6 destination it cannot carry: another member serves it, and the socks4 one stays in rotation', async (t) => {
  const four = await startRecordingSocks4('127.0.0.73');
  t.after(() => four.close());
  const five = await startScriptedSocks({ host: '127.0.0.74' });
  t.after(() => five.close());
  const deps = { dns, connectTimeout: 3_000 };
  const m4 = createSocks4Outbound('four', socks4({ host: four.host, port: four.port }), deps);
  const m5 = createSocks5Outbound('five', { type: 'socks5', host: five.host, port: five.port, remote_dns: true }, deps);
  const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'socks5', strategy: 'failover', ban_after: 1 };
  const pool = createPoolOutbound('mixed', cfg, { members: specs([m4, m5]), log });
  const conn = await pool.connect({ host: '::1', port: 8080 }, ctx());
  assert.equal(await readAll(conn.socket), 'ok');
  conn.release?.();
  assert.equal(conn.member, 'five');
  assert.equal(four.requests.length, 0, 'nothing was sent to the socks4 member');
  // Not counted against it (ban_after 1): the next IPv4 request is its again, first in failover order.
  const again = await pool.connect({ host: '127.0.0.1', port: 8080 }, ctx());
  assert.equal(await readAll(again.socket), 'ok');
  again.release?.();
  assert.equal(again.member, 'four');
});

test('a health check target a socks4 member cannot be asked for (an IPv6 address) blames no member', async (t) => {
  const four = await startRecordingSocks4('127.0.0.75');
  t.after(() => four.close());
  const m4 = createSocks4Outbound('four', socks4({ host: four.host, port: four.port }), { dns, connectTimeout: 2_000 });
  let settled = 0;
  const counted = { name: m4.name, connect: (d: { host: string; port: number }, c: OutboundContext) => m4.connect(d, c).finally(() => void settled++), close: () => m4.close() };
  const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'socks4', strategy: 'round-robin', ban_after: 1, health_check: { interval: 100, timeout: 2_000, target: '[::1]:80' } };
  const pool = createPoolOutbound('hc', cfg, { members: specs([counted]), log });
  pool.start?.();
  t.after(() => pool.close());
  for (let i = 0; i < 100 && settled < 3; i++) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50)); // the pool reads the last outcome
  assert.ok(settled >= 3, 'the checks did not end');
  assert.deepEqual(pool.stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0]]);
  assert.equal(four.requests.length, 0);
});

test('a pool does not spend an attempt on a socks4 member for an IPv6 literal, and pick names the member such a request gets', async (t) => {
  const four = await startRecordingSocks4('127.0.0.75');
  t.after(() => four.close());
  const five = await startScriptedSocks({ host: '127.0.0.76' });
  t.after(() => five.close());
  const deps = { dns, connectTimeout: 3_000 };
  const m4 = createSocks4Outbound('four', socks4({ host: four.host, port: four.port }), deps);
  const m5 = createSocks5Outbound('five', { type: 'socks5', host: five.host, port: five.port, remote_dns: true }, deps);
  for (const strategy of ['failover', 'round-robin', 'sticky'] as const) {
    const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'socks5', strategy, max_attempts: 1, ban_after: 3 };
    const pool = createPoolOutbound(`mixed-${strategy}`, cfg, { members: specs([m4, m5]), log });
    for (let i = 0; i < 3; i++) {
      const v6 = { host: '::1', port: 8080 };
      // What `socksgate route` and GET /api/route show: the member the request below is served by.
      assert.equal(pool.pick('k', undefined, 'connect', v6), 'five', strategy);
      const conn = await pool.connect(v6, ctx());
      assert.equal(await readAll(conn.socket), 'ok');
      conn.release?.();
      assert.equal(conn.member, 'five', strategy);
    }
    // IPv4-mapped is IPv4 to a socks4 member: it is not passed over for it.
    assert.equal(pool.pick('k', undefined, 'connect', { host: '::ffff:127.0.0.1', port: 8080 }), pool.pick('k', undefined, 'connect', { host: '127.0.0.1', port: 8080 }));
  }
  assert.equal(four.requests.length, 0);
});
