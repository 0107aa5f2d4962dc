import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep, UpstreamRefusedError } from '../../src/errors.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import { fromSocksError, UpstreamAuthError, UpstreamUnreachableError } from '../../src/outbound/socks5-errors.js';
import type { Socks5UpstreamConfig } from '../../src/config/types.js';
import type { Connection, OutboundContext } from '../../src/outbound/types.js';
import { listenTracked } from '../helpers/servers.js';
import { freePort, readAll, specs, startDante, startDestination, startMicrosocks, startScriptedSocks } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: { 'only-here.test': '127.0.0.1' } });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });
const upstream = (host: string, port: number, extra: Partial<Socks5UpstreamConfig> = {}): Socks5UpstreamConfig => ({
  type: 'socks5',
  host,
  port,
  remote_dns: true,
  ...extra,
});

async function rejection(p: Promise<Connection>): Promise<GatewayError> {
  const err = await p.then(
    (c) => {
      c.socket.destroy();
      assert.fail('expected a failure');
    },
    (e: unknown) => e,
  );
  assert.ok(err instanceof GatewayError, `a GatewayError, got ${String(err)}`);
  return err;
}

test('one hop: the destination sees the upstream, the server-first greeting survives, BND is the reply', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.2' });
  t.after(() => dante.close());
  const out = createSocks5Outbound('dante', upstream(dante.host, dante.port), { dns, connectTimeout: 3_000 });
  const conn = await out.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal(conn.bound?.host, '127.0.0.2');
  assert.equal(await readAll(conn.socket), 'hello 127.0.0.2\n');
  conn.release?.();
  const { latencyMs, ...counts } = out.stats();
  assert.deepEqual(counts, { name: 'dante', attempts: 1, failures: 0, active: 0, healthy: true });
  assert.ok(latencyMs !== undefined && latencyMs > 0, 'the connect is measured');
});

test('a two-hop chain: the destination sees the last hop', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.2' });
  t.after(() => dante.close());
  const micro = await startMicrosocks({ host: '127.0.0.3', user: 'u', pass: 'p' });
  t.after(() => micro.close());
  const first = createSocks5Outbound('corp', upstream(dante.host, dante.port), { dns, connectTimeout: 3_000 });
  const second = createSocks5Outbound('egress', upstream(micro.host, micro.port, { username: 'u', password: 'p' }), {
    dns,
    connectTimeout: 3_000,
    via: first,
  });
  const conn = await second.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal(await readAll(conn.socket), 'hello 127.0.0.3\n');
  conn.release?.();
  assert.equal(first.stats().active, 0);
  assert.equal(first.stats().attempts, 1);
  assert.deepEqual(dest.peers, ['127.0.0.3']);
});

test('a chain whose first hop never answers: that hop is at fault, and a pool as the first hop ejects its silent member', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const mute = await startScriptedSocks({ host: '127.0.0.4', silent: true });
  t.after(() => mute.close());
  const live = await startMicrosocks({ host: '127.0.0.5' });
  t.after(() => live.close());
  const last = await startMicrosocks({ host: '127.0.0.6' });
  t.after(() => last.close());
  const hop = (u: { host: string; port: number }) => createSocks5Outbound(`socks5://${u.host}:${u.port}`, upstream(u.host, u.port), { dns, connectTimeout: 300 });

  // The next hop's deadline ends first (it began first): the silent hop is still the one that timed out.
  const silentHop = hop(mute);
  const through = createSocks5Outbound('last', upstream(last.host, last.port), { dns, connectTimeout: 300, via: silentHop });
  await rejection(through.connect({ host: '127.0.0.1', port: dest.port }, ctx()));
  assert.equal(silentHop.stats().failures, 1);
  for (let i = 0; i < 2; i++) await rejection(through.connect({ host: '127.0.0.1', port: dest.port }, ctx()));
  assert.equal(silentHop.stats().healthy, false, 'three timeouts of its own: the silent hop reads unhealthy');

  const hops = createPoolOutbound('hops', { type: 'pool', members: [], members_scheme: 'socks5', strategy: 'failover', ban_after: 1 }, { members: specs([hop(mute), hop(live)]), log });
  t.after(() => hops.close());
  const viaPool = createSocks5Outbound('last', upstream(last.host, last.port), { dns, connectTimeout: 300, via: hops });
  await rejection(viaPool.connect({ host: '127.0.0.1', port: dest.port }, ctx()));
  assert.deepEqual(hops.stats().map((m) => m.healthy), [false, true], 'the silent member is ejected');
  const conn = await viaPool.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal(await readAll(conn.socket), 'hello 127.0.0.6\n');
  conn.release?.();
});

test('a wrong upstream password gives 0x01 and the next request still works', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const micro = await startMicrosocks({ host: '127.0.0.4', user: 'u', pass: 'right' });
  t.after(() => micro.close());
  const bad = createSocks5Outbound('bad', upstream(micro.host, micro.port, { username: 'u', password: 'wrong' }), { dns, connectTimeout: 3_000 });
  const err = await rejection(bad.connect({ host: '127.0.0.1', port: dest.port }, ctx()));
  assert.ok(err instanceof UpstreamAuthError, err.message);
  assert.equal(err.rep, Rep.GENERAL_FAILURE);
  assert.equal(bad.stats().failures, 1);
  const good = createSocks5Outbound('good', upstream(micro.host, micro.port, { username: 'u', password: 'right' }), { dns, connectTimeout: 3_000 });
  const conn = await good.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal(await readAll(conn.socket), 'hello 127.0.0.4\n');
});

test('an unreachable upstream keeps its errno reply (ECONNREFUSED → 0x05)', async () => {
  const port = await freePort('127.0.0.5');
  const out = createSocks5Outbound('gone', upstream('127.0.0.5', port), { dns, connectTimeout: 3_000 });
  const err = await rejection(out.connect({ host: '127.0.0.1', port: 9 }, ctx()));
  assert.ok(err instanceof UpstreamUnreachableError);
  assert.equal(err.rep, Rep.CONNECTION_REFUSED);
});

test("Dante's own replies pass through: its block rule gives 0x02, a refused port 0x05", async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.8', block: ['127.0.0.1/32'] });
  t.after(() => dante.close());
  const out = createSocks5Outbound('dante', upstream(dante.host, dante.port), { dns, connectTimeout: 3_000 });
  const blocked = await rejection(out.connect({ host: '127.0.0.1', port: dest.port }, ctx()));
  assert.ok(blocked instanceof UpstreamRefusedError, blocked.message);
  assert.equal(blocked.rep, Rep.NOT_ALLOWED);
  const refused = await rejection(out.connect({ host: '127.0.0.3', port: await freePort('127.0.0.3') }, ctx()));
  assert.ok(refused instanceof UpstreamRefusedError, refused.message);
  assert.equal(refused.rep, Rep.CONNECTION_REFUSED);
  assert.equal(dest.peers.length, 0, 'nothing reached the blocked destination');
});

test('the REP codes no local server can be made to send pass through too (scripted instrument)', async (t) => {
  // No real upstream here answers 0x01, 0x03, 0x04 or 0x06–0x08 on loopback (no routes to
  // lose, no names to miss without a resolver, no commands we do not send), nor an unassigned
  // code: a scripted SOCKS5 instrument does.
  for (const rep of [1, 3, 4, 6, 7, 8, 9, 0xff]) {
    const fake = await startScriptedSocks({ rep });
    t.after(() => fake.close());
    const out = createSocks5Outbound('fake', upstream(fake.host, fake.port), { dns, connectTimeout: 3_000 });
    const err = await rejection(out.connect({ host: '127.0.0.1', port: 80 }, ctx()));
    assert.ok(err instanceof UpstreamRefusedError, err.message);
    assert.equal(err.rep, rep <= 8 ? rep : Rep.GENERAL_FAILURE, `REP ${rep}`);
  }
});

test('the socks error adapter: reply codes by name, auth, anything else', () => {
  assert.equal(fromSocksError('u', new Error('Socks5 proxy rejected connection - TTLExpired')).rep, Rep.TTL_EXPIRED);
  assert.equal(fromSocksError('u', new Error('Socks5 proxy rejected connection - undefined')).rep, Rep.GENERAL_FAILURE);
  // BIND's second reply is worded otherwise by `socks`.
  assert.equal(fromSocksError('u', new Error('Socks5 Proxy rejected incoming bound connection - ConnectionRefused')).rep, Rep.CONNECTION_REFUSED);
  assert.ok(fromSocksError('u', new Error('Socks5 Authentication failed')) instanceof UpstreamAuthError);
  const other = fromSocksError('u', new Error('Socket closed'));
  assert.equal(other.code, 'GW_ERR_UPSTREAM_HANDSHAKE');
  assert.equal(other.rep, Rep.GENERAL_FAILURE);
});

test('remote_dns true sends the name, false resolves here and sends the address', async (t) => {
  const seen = await startScriptedSocks();
  t.after(() => seen.close());
  const remote = createSocks5Outbound('r', upstream(seen.host, seen.port), { dns, connectTimeout: 3_000 });
  const local = createSocks5Outbound('l', upstream(seen.host, seen.port, { remote_dns: false }), { dns, connectTimeout: 3_000 });
  const a = await remote.connect({ host: 'only-here.test', port: 81 }, ctx());
  assert.equal(a.bound?.host, '10.9.8.7');
  assert.equal(a.bound?.port, 4242);
  a.socket.destroy();
  (await local.connect({ host: 'only-here.test', port: 82 }, ctx())).socket.destroy();
  // The router's answer is used as is, without another lookup.
  const given = { ...ctx(), resolved: [{ address: '192.0.2.9', family: 4 as const }] };
  (await local.connect({ host: 'only-here.test', port: 83 }, given)).socket.destroy();
  assert.deepEqual(seen.requests, [
    { atyp: 3, host: 'only-here.test', port: 81 },
    { atyp: 1, host: '127.0.0.1', port: 82 },
    { atyp: 1, host: '192.0.2.9', port: 83 },
  ]);
});

test('BIND asks for what CONNECT would: remote_dns true sends the name, false resolves here (or takes the router\'s answer) and sends the address', async (t) => {
  const seen = await startScriptedSocks();
  t.after(() => seen.close());
  const remote = createSocks5Outbound('r', upstream(seen.host, seen.port), { dns, connectTimeout: 3_000 });
  const local = createSocks5Outbound('l', upstream(seen.host, seen.port, { remote_dns: false }), { dns, connectTimeout: 3_000 });
  const given = { ...ctx(), resolved: [{ address: '192.0.2.9', family: 4 as const }] };
  for (const [out, port, c] of [[remote, 81, ctx()], [local, 82, ctx()], [local, 83, given]] as const) {
    // The recorder's grant is the first reply (RFC 1928 §4); no peer ever comes.
    const handle = await out.bind!({ host: 'only-here.test', port }, c);
    assert.deepEqual(handle.listening, { host: '10.9.8.7', port: 4242 });
    handle.close();
  }
  assert.deepEqual(seen.requests, [
    { atyp: 3, host: 'only-here.test', port: 81 },
    { atyp: 1, host: '127.0.0.1', port: 82 },
    { atyp: 1, host: '192.0.2.9', port: 83 },
  ]);
  // A name the request cannot carry as sent is refused unsent, as for CONNECT.
  await assert.rejects(remote.bind!({ host: 'bad name.test', port: 84 }, ctx()), (e: unknown) => e instanceof GatewayError && e.rep === Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  assert.equal(seen.requests.length, 3);
});

test('remote_dns false against microsocks: a name only we know works, resolved here', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const micro = await startMicrosocks({ host: '127.0.0.6' });
  t.after(() => micro.close());
  const local = createSocks5Outbound('l', upstream(micro.host, micro.port, { remote_dns: false }), { dns, connectTimeout: 3_000 });
  const conn = await local.connect({ host: 'only-here.test', port: dest.port }, ctx());
  assert.equal(await readAll(conn.socket), 'hello 127.0.0.6\n');
  // The other half (remote_dns true sends the name) is the recording test above: handing
  // microsocks the name would send it to the machine's resolver.
});

test('an IPv6 upstream to an IPv6 destination', async (t) => {
  const dest = await startDestination('::1');
  t.after(() => dest.close());
  const micro = await startMicrosocks({ host: '::1', bind: null });
  t.after(() => micro.close());
  const out = createSocks5Outbound('v6', upstream('::1', micro.port), { dns, connectTimeout: 3_000 });
  const conn = await out.connect({ host: '::1', port: dest.port }, ctx());
  assert.equal(await readAll(conn.socket), 'hello ::1\n');
});

test('an upstream that never answers: 0x06 within the connect timeout, as its own fault', async (t) => {
  const mute = await startScriptedSocks({ silent: true });
  t.after(() => mute.close());
  const out = createSocks5Outbound('mute', upstream(mute.host, mute.port), { dns, connectTimeout: 200 });
  const err = await rejection(out.connect({ host: '127.0.0.1', port: 9 }, ctx()));
  assert.ok(err instanceof UpstreamUnreachableError, err.message);
  assert.equal(err.rep, Rep.TTL_EXPIRED);
});

test('an upstream silent before our request is sent (its RFC 1929 answer never comes) is at fault; one silent after it waits on the destination', async (t) => {
  // Answers the method choice with `method`, RFC 1929 auth with `auth` when given, then nothing.
  const stalling = async (method: number, auth?: number[]): Promise<number> => {
    const srv = createServer((s) => {
      s.on('error', () => {});
      let step = 0;
      s.on('data', () => {
        if (step === 0) s.write(Buffer.from([5, method]));
        if (step === 1 && auth) s.write(Buffer.from(auth));
        step++;
      });
    });
    const { port, close } = await listenTracked(srv);
    t.after(close);
    return port;
  };
  const creds = { username: 'u', password: 'p' };
  const attempt = async (port: number): Promise<GatewayError> =>
    rejection(createSocks5Outbound('stall', upstream('127.0.0.1', port, creds), { dns, connectTimeout: 300 }).connect({ host: '127.0.0.1', port: 9 }, ctx()));

  const inAuth = await attempt(await stalling(0x02));
  assert.ok(inAuth instanceof UpstreamUnreachableError, `the request was never sent: ${inAuth.message}`);
  assert.equal(inAuth.rep, Rep.TTL_EXPIRED);

  for (const port of [await stalling(0x02, [1, 0]), await stalling(0x00)]) {
    const inRequest = await attempt(port);
    assert.equal(inRequest.code, 'GW_ERR_CONNECT_TIMEOUT', `asked for the destination: ${inRequest.message}`);
    assert.equal(inRequest.rep, Rep.TTL_EXPIRED);
  }
});

test('the caller giving up aborts the attempt', async (t) => {
  const mute = await startScriptedSocks({ silent: true });
  t.after(() => mute.close());
  const out = createSocks5Outbound('mute', upstream(mute.host, mute.port), { dns, connectTimeout: 10_000 });
  const ac = new AbortController();
  const p = out.connect({ host: '127.0.0.1', port: 9 }, { ...ctx(), signal: ac.signal });
  setTimeout(() => ac.abort(), 50);
  const err = await rejection(p);
  assert.equal(err.code, 'GW_ERR_ABORTED');
});

test('bytes the destination sent with the reply wait for a late reader', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const micro = await startMicrosocks({ host: '127.0.0.7' });
  t.after(() => micro.close());
  const out = createSocks5Outbound('m', upstream(micro.host, micro.port), { dns, connectTimeout: 3_000 });
  for (let i = 0; i < 5; i++) {
    const conn = await out.connect({ host: '127.0.0.1', port: dest.port }, ctx());
    await sleep(30); // the relay may start a few turns later
    assert.equal(await readAll(conn.socket), 'hello 127.0.0.7\n');
  }
});

test('a connection through a SOCKS5 upstream is let go once it ends, though `socks` keeps a timer per handshake; the timer finds nothing to do when it fires', async (t) => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const dest = await startDestination();
  t.after(() => dest.close());
  const micro = await startMicrosocks({ host: '127.0.0.2', user: 'u', pass: 'p' });
  t.after(() => micro.close());
  // `socks` is given connect_timeout + 1 s: 1.2 s here, so the timers fire within the test.
  const out = createSocks5Outbound('micro', upstream(micro.host, micro.port, { username: 'u', password: 'p' }), { dns, connectTimeout: 200 });
  // In a function of its own: an async function's frame may hold its last value until it returns.
  const relayed = async (): Promise<WeakRef<object>> => {
    const conn = await out.connect({ host: '127.0.0.1', port: dest.port }, ctx());
    assert.equal(await readAll(conn.socket), 'hello 127.0.0.2\n');
    conn.socket.destroy();
    conn.release?.();
    return new WeakRef(conn.socket);
  };
  const refs: Array<WeakRef<object>> = [];
  for (let i = 0; i < 5; i++) refs.push(await relayed());
  const wrong = createSocks5Outbound('micro-wrong', upstream(micro.host, micro.port, { username: 'u', password: 'nope' }), { dns, connectTimeout: 200 });
  assert.equal((await rejection(wrong.connect({ host: '127.0.0.1', port: dest.port }, ctx()))).rep, Rep.GENERAL_FAILURE);
  await sleep(50);
  gc();
  await sleep(10);
  gc();
  assert.deepEqual(refs.map((r, i) => (r.deref() === undefined ? -1 : i)).filter((i) => i >= 0), [], 'every ended connection collected, before the timers fired');
  // The timers of the five and of the refused one fire here; an exception would fail the test.
  await sleep(1_600);
  assert.equal((await readAll((await out.connect({ host: '127.0.0.1', port: dest.port }, ctx())).socket)), 'hello 127.0.0.2\n');
});

test('an IPv6 destination is bracketed in the timeout messages: "to [::1]:9", never the ambiguous "::1:9"', async (t) => {
  const mute = await startScriptedSocks({ host: '::1', silent: true });
  t.after(() => mute.close());
  const silent = await rejection(createSocks5Outbound('mute', upstream('::1', mute.port), { dns, connectTimeout: 200 }).connect({ host: '::1', port: 9 }, ctx()));
  assert.equal(silent.message, 'upstream "mute" silent: upstream "mute" to [::1]:9: connected, no answer to our greeting (an HTTP proxy? type: http / http://) within 200ms');
  // Asked, and waiting on the destination: the timeout is about the destination.
  const srv = createServer((s) => {
    s.on('error', () => {});
    s.once('data', () => s.write(Buffer.from([5, 0])));
  });
  const waiting = await listenTracked(srv, '::1');
  t.after(waiting.close);
  const slow = await rejection(createSocks5Outbound('slow', upstream('::1', waiting.port), { dns, connectTimeout: 200 }).connect({ host: '2001:db8::1', port: 443 }, ctx()));
  assert.equal(slow.message, 'upstream "slow" to [2001:db8::1]:443: no connection within 200ms');
});
