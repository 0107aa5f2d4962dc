import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { join } from 'node:path';
import { pino } from 'pino';
import type { HttpUpstreamConfig, PoolConfig } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { GatewayError, Rep } from '../../src/errors.js';
import { createHttpOutbound } from '../../src/outbound/http.js';
import { fromHttpError, HttpProxyRefusal } from '../../src/outbound/http-errors.js';
import { createPoolOutbound } from '../../src/outbound/pool.js';
import { createSocks4Outbound } from '../../src/outbound/socks4.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import { isUpstreamFault } from '../../src/outbound/socks5-errors.js';
import type { Connection, Outbound, OutboundContext } from '../../src/outbound/types.js';
import { readFile } from 'node:fs/promises';
import { listenTracked } from '../helpers/servers.js';
import { socksConnect, startGateway } from '../helpers/index.js';
import { makePki, readAll, specs, startDestination, startMicrosocks, startSquid, startTinyproxy, startTlsTerminator } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });
/** What the destination sent: bytes that came with the proxy's 200 (`head`), then the stream. */
async function received(conn: Connection): Promise<string> {
  return (conn.head?.toString() ?? '') + (await readAll(conn.socket));
}

const http = (cfg: Partial<HttpUpstreamConfig> & { host: string; port: number }): HttpUpstreamConfig => ({ type: 'http', tls: false, remote_dns: true, ...cfg });

test('the HTTP refusal adapter: each status gets its reply code, and only the proxy\'s own faults count against it', () => {
  const cases: [number, string | undefined, Rep, boolean][] = [
    [407, undefined, Rep.GENERAL_FAILURE, true],
    [401, undefined, Rep.GENERAL_FAILURE, true],
    [403, undefined, Rep.NOT_ALLOWED, false],
    [404, undefined, Rep.HOST_UNREACHABLE, false],
    [429, undefined, Rep.GENERAL_FAILURE, true],
    [405, undefined, Rep.GENERAL_FAILURE, true],
    [502, undefined, Rep.GENERAL_FAILURE, false],
    [503, 'ERR_CONNECT_FAIL 111', Rep.CONNECTION_REFUSED, false],
    [503, 'ERR_CONNECT_FAIL 113', Rep.HOST_UNREACHABLE, false],
    [503, 'ERR_DNS_FAIL 0', Rep.HOST_UNREACHABLE, false],
    [503, 'ERR_CANNOT_FORWARD 0', Rep.GENERAL_FAILURE, false],
    [504, undefined, Rep.TTL_EXPIRED, false],
    [500, undefined, Rep.GENERAL_FAILURE, false],
    [302, undefined, Rep.GENERAL_FAILURE, true],
  ];
  for (const [status, detail, rep, fault] of cases) {
    const e = fromHttpError('p', new HttpProxyRefusal(status, 'Why', detail));
    assert.ok(e instanceof GatewayError);
    assert.equal(e.rep, rep, `${status} ${detail ?? ''}`);
    assert.equal(isUpstreamFault(e), fault, `${status} ${detail ?? ''} fault`);
  }
  // The access log gets what the proxy answered, not only the code it maps to.
  assert.equal(
    fromHttpError('corp', new HttpProxyRefusal(403, 'Forbidden', 'ERR_ACCESS_DENIED 0')).message,
    'upstream "corp" replied 2: answered CONNECT with 403 Forbidden (ERR_ACCESS_DENIED 0)',
  );
  assert.equal(fromHttpError('corp', new HttpProxyRefusal(504, 'Gateway Timeout', undefined)).message, 'upstream "corp" replied 6: answered CONNECT with 504 Gateway Timeout');
  const tls = Object.assign(new Error('unable to verify the first certificate'), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
  const e = fromHttpError('p', tls);
  assert.ok(isUpstreamFault(e) && e.message.includes('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), e.message);
});

test('an https:// proxy: TLS verified against the configured CA (by servername or IP), a wrong CA fails', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-https-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pki = await makePki(await mkdtemp(join(dir, 'a-')), { names: ['proxy.test'], ips: ['127.0.0.61'] });
  const other = await makePki(await mkdtemp(join(dir, 'b-')), { names: ['proxy.test'], ips: ['127.0.0.61'] });
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.62', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const front = await startTlsTerminator('127.0.0.61', pki, tiny);
  t.after(() => front.close());
  const base = { host: front.host, port: front.port, tls: true, username: 'user', password: 'pass' };
  const to = { host: '127.0.0.1', port: dest.port };

  const byName = createHttpOutbound('https', http({ ...base, servername: 'proxy.test' }), { dns, connectTimeout: 5_000, ca: await readFile(pki.caFile) });
  const conn = await byName.connect(to, ctx());
  assert.equal(conn.socket.constructor.name, 'TLSSocket');
  assert.equal(await received(conn), 'hello 127.0.0.62\n');
  conn.release?.();

  const byIp = createHttpOutbound('https-ip', http(base), { dns, connectTimeout: 5_000, ca: await readFile(pki.caFile) });
  const second = await byIp.connect(to, ctx());
  assert.equal(await received(second), 'hello 127.0.0.62\n');
  second.release?.();

  const wrongCa = createHttpOutbound('https-wrong', http({ ...base, servername: 'proxy.test' }), { dns, connectTimeout: 5_000, ca: await readFile(other.caFile) });
  await assert.rejects(wrongCa.connect(to, ctx()), (e: unknown) => {
    assert.ok(e instanceof GatewayError && isUpstreamFault(e), String(e));
    assert.match(e.message, /certificate|SIGNATURE|CERT/i);
    return true;
  });
  const wrongName = createHttpOutbound('https-name', http({ ...base, servername: 'other.test' }), { dns, connectTimeout: 5_000, ca: await readFile(pki.caFile) });
  await assert.rejects(wrongName.connect(to, ctx()), (e: unknown) => e instanceof GatewayError && /ALTNAME|other\.test/.test(e.message));
  // TLS runs on whatever stream the previous hop gives: an https:// proxy reached through SOCKS5.
  const hop = await startMicrosocks({ host: '127.0.0.65' });
  t.after(() => hop.close());
  const socksHop = createSocks5Outbound('hop', { type: 'socks5', host: hop.host, port: hop.port, remote_dns: true }, { dns, connectTimeout: 5_000 });
  const chained = createHttpOutbound('https-chained', http({ ...base, servername: 'proxy.test' }), { dns, connectTimeout: 5_000, ca: await readFile(pki.caFile), via: socksHop });
  const third = await chained.connect(to, ctx());
  assert.equal(await received(third), 'hello 127.0.0.62\n');
  third.release?.();
  assert.equal(socksHop.stats().attempts, 1);

  // Without `ca` the default store is used: a private CA does not verify.
  const noCa = createHttpOutbound('https-default', http(base), { dns, connectTimeout: 5_000 });
  await assert.rejects(noCa.connect(to, ctx()), (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
});

test('an https:// proxy by name gets that name in SNI without a trailing dot, one by IP literal no SNI (RFC 6066 §3)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-sni-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const pki = await makePki(dir, { names: ['proxy.test'], ips: ['127.0.0.68'] });
  const dest = await startDestination();
  t.after(() => dest.close());
  // Test instrument: a TLS proxy that records the SNI of each client and grants every CONNECT to `dest`.
  const sent: (string | false | null)[] = [];
  const srv = createTlsServer({ key: pki.key, cert: pki.cert }, (s) => {
    sent.push((s as TLSSocket).servername);
    s.on('error', () => {});
    s.once('data', () => {
      const up = connect(dest.port, '127.0.0.1');
      up.on('error', () => s.destroy());
      up.once('connect', () => {
        s.write('HTTP/1.1 200 Connection established\r\n\r\n');
        up.pipe(s);
      });
    });
  });
  const front = await listenTracked(srv, '127.0.0.68');
  t.after(() => front.close());
  const named = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: { 'proxy.test': '127.0.0.68' } });
  const ca = await readFile(pki.caFile);
  const to = { host: '127.0.0.1', port: dest.port };
  for (const host of ['proxy.test.', '127.0.0.68']) {
    const out = createHttpOutbound('sni', http({ host, port: front.port, tls: true }), { dns: named, connectTimeout: 5_000, ca });
    const conn = await out.connect(to, ctx());
    assert.equal(await received(conn), 'hello 127.0.0.1\n');
    conn.release?.();
  }
  assert.deepEqual(sent, ['proxy.test', false]);
});

test('tls: true towards a plain HTTP proxy fails as the proxy\'s fault, said in one readable line', async (t) => {
  // squid answers the TLS hello with an HTTP 400, which is no TLS record.
  const squid = await startSquid({ host: '127.0.0.67' });
  t.after(() => squid.close());
  const out = createHttpOutbound('not-tls', http({ host: squid.host, port: squid.port, tls: true }), { dns, connectTimeout: 5_000 });
  await assert.rejects(out.connect({ host: '127.0.0.1', port: 9 }, ctx()), (e: unknown) => {
    assert.ok(e instanceof GatewayError && isUpstreamFault(e), String(e));
    assert.match(e.message, /^upstream "not-tls": TLS with the proxy failed: [a-z ]+ \(ERR_SSL_[A-Z_]+\)(: not a TLS port \(a plain HTTP proxy\? tls: false \/ http:\/\/\))?$/);
    return true;
  });
});

test('a pool with a wrong-password member: the member is counted as failed and another one serves', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.63', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const deps = { dns, connectTimeout: 5_000 };
  const wrong = createHttpOutbound('wrong', http({ host: tiny.host, port: tiny.port, username: 'user', password: 'nope' }), deps);
  const right = createHttpOutbound('right', http({ host: tiny.host, port: tiny.port, username: 'user', password: 'pass' }), deps);
  const cfg: PoolConfig = { type: 'pool', members: [], members_scheme: 'http', strategy: 'failover', ban_after: 3, max_attempts: 2 };
  const pool = createPoolOutbound('p', cfg, { members: specs([wrong, right]), log });
  t.after(() => pool.close());
  const conn = await pool.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal(conn.member, 'right');
  assert.equal(await received(conn), 'hello 127.0.0.63\n');
  conn.release?.();
  const stats = pool.stats();
  assert.deepEqual(
    stats.map((s) => [s.name, s.failures, s.consecutiveFailures]),
    [
      ['wrong', 1, 1],
      ['right', 0, 0],
    ],
  );
});

/**
 * A scripted HTTP proxy (not a real one: it writes its 200 and the destination's first bytes
 * in one segment, then closes), to see that bytes after the 200 reach the client.
 */
async function startEagerProxy(host: string): Promise<{ host: string; port: number; requests: string[]; close(): Promise<void> }> {
  const requests: string[] = [];
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (b: Buffer) => {
      head += b.toString('latin1');
      if (!head.includes('\r\n\r\n')) return;
      requests.push(head);
      s.end('HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n');
    });
  });
  return { host, requests, ...(await listenTracked(srv, host)) };
}

test('bytes the proxy sends right after its 200 reach the client; the CONNECT carries Host and Basic auth', async (t) => {
  const eager = await startEagerProxy('127.0.0.64');
  t.after(() => eager.close());
  const gw = await startGateway({
    dns: { hosts: { 'example.test': '127.0.0.1' } },
    auth: { users: [{ username: 'local', password: 'pw' }, { username: 'remote', password: 'pw' }] },
    upstreams: {
      eager: { type: 'http', host: eager.host, port: eager.port, username: 'u', password: 'p:w' },
      local: { type: 'http', host: eager.host, port: eager.port, remote_dns: false },
    },
    rules: [{ name: 'local', users: ['local'], action: 'local' }],
    default: 'eager',
  });
  t.after(() => gw.close());
  const { socket } = await socksConnect(gw.port, { host: 'example.test', port: 22 }, 5_000, { userId: 'remote', password: 'pw' });
  assert.equal(await readAll(socket), 'SSH-2.0-banner\r\n');
  const [req] = eager.requests;
  assert.match(req!, /^CONNECT example\.test:22 HTTP\/1\.1\r\n/);
  assert.match(req!, /\r\nhost: example\.test:22\r\n/i);
  assert.ok(req!.toLowerCase().includes(`proxy-authorization: basic ${Buffer.from('u:p:w').toString('base64').toLowerCase()}`), req);
  // remote_dns: false resolves through our DNS path (dns.hosts here) and asks for the address.
  const local = await socksConnect(gw.port, { host: 'example.test', port: 22 }, 5_000, { userId: 'local', password: 'pw' });
  assert.equal(await readAll(local.socket), 'SSH-2.0-banner\r\n');
  assert.match(eager.requests[1]!, /^CONNECT 127\.0\.0\.1:22 HTTP\/1\.1\r\n/);
  assert.ok(!/proxy-authorization/i.test(eager.requests[1]!), 'no credentials configured, none sent');
});

/**
 * A scripted HTTP proxy (not a real one: none here sends 1xx to a CONNECT) that answers the
 * CONNECT head with `replies`, one write each, then closes; it records every byte it got.
 */
async function startInterimProxy(host: string, replies: string[]): Promise<{ host: string; port: number; received: () => string; close(): Promise<void> }> {
  let got = '';
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    s.on('data', (b: Buffer) => {
      const before = got.includes('\r\n\r\n');
      got += b.toString('latin1');
      if (before || !got.includes('\r\n\r\n')) return;
      const next = (i: number): void => {
        if (i === replies.length) return void s.end();
        s.write(replies[i]!);
        setTimeout(() => next(i + 1), 20); // apart, so each reaches the client in its own read
      };
      next(0);
    });
  });
  return { host, received: () => got, ...(await listenTracked(srv, host)) };
}

test('interim 1xx answers before the proxy\'s 200 are read past (RFC 9110 §15.2); the CONNECT is sent once', async (t) => {
  const to = { host: '127.0.0.1', port: 9 };
  const bounded = (p: Promise<Connection>): Promise<Connection> =>
    Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the dial never settled')), 10_000))]);
  const through = async (replies: string[]): Promise<{ out: ReturnType<typeof createHttpOutbound>; conn: Promise<Connection>; received: () => string }> => {
    const proxy = await startInterimProxy('127.0.0.1', replies);
    t.after(() => proxy.close());
    const out = createHttpOutbound('interim', http({ host: proxy.host, port: proxy.port }), { dns, connectTimeout: 5_000 });
    return { out, conn: bounded(out.connect(to, ctx())), received: proxy.received };
  };
  // Apart, and together in one segment with the 200 and the destination's first bytes.
  const apart = await through(['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 102 Processing\r\n\r\n', 'HTTP/1.1 200 Connection established\r\n\r\n', 'banner\r\n']);
  assert.equal(await received(await apart.conn), 'banner\r\n');
  assert.equal(apart.received().match(/CONNECT /g)?.length, 1);
  const together = await through(['HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\nbanner\r\n']);
  assert.equal(await received(await together.conn), 'banner\r\n');
  assert.equal(together.out.stats().failures, 0);
  // The final answer is what counts: a refusal after a 1xx is that refusal.
  const refused = await through(['HTTP/1.1 100 Continue\r\n\r\n', 'HTTP/1.1 403 Forbidden\r\n\r\n']);
  await assert.rejects(refused.conn, (e: unknown) => e instanceof GatewayError && e.rep === Rep.NOT_ALLOWED && !isUpstreamFault(e));
  // A proxy that closes after a 1xx, or sends 1xx without end, is at fault, and the dial ends.
  const closed = await through(['HTTP/1.1 100 Continue\r\n\r\n']);
  await assert.rejects(closed.conn, (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
  const endless = await through(Array.from({ length: 12 }, () => 'HTTP/1.1 102 Processing\r\n\r\n'));
  await assert.rejects(endless.conn, (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
});

test('an http member fills {session} in its username per request: tinyproxy lets only the filled name in', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.66', user: 'cust-session-s42', pass: 'pass' });
  t.after(() => tiny.close());
  const out = createHttpOutbound('tpl', http({ host: tiny.host, port: tiny.port, username: 'cust-session-{session}', password: 'pass' }), { dns, connectTimeout: 5_000 });
  const conn = await out.connect({ host: '127.0.0.1', port: dest.port }, { ...ctx(), params: { session: 's42' } });
  assert.equal(await received(conn), 'hello 127.0.0.66\n');
  conn.release?.();
  // Another session is another name, which this proxy refuses (407): the template was not sent as is.
  await assert.rejects(out.connect({ host: '127.0.0.1', port: dest.port }, { ...ctx(), params: { session: 's43' } }), (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
});

test('an https:// proxy that never answers the TLS hello, or closes during it: the dial fails at connect_timeout (or at once), counted against the proxy', async (t) => {
  const held: Socket[] = [];
  // Test instruments: one accepts and says nothing, one accepts and closes at the first byte.
  const silent = await listenTracked(createServer((s) => void held.push(s.on('error', () => {}))), '127.0.0.1');
  t.after(() => silent.close());
  t.after(() => held.forEach((s) => s.destroy()));
  const closing = await listenTracked(createServer((s) => s.on('error', () => {}).once('data', () => s.destroy())), '127.0.0.1');
  t.after(() => closing.close());
  const to = { host: '127.0.0.1', port: 9 };

  const mute = createHttpOutbound('mute', http({ host: '127.0.0.1', port: silent.port, tls: true }), { dns, connectTimeout: 500 });
  const bounded = (p: Promise<unknown>): Promise<unknown> =>
    Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('the dial never settled')), 10_000))]);
  await assert.rejects(bounded(mute.connect(to, ctx())), (e: unknown) => {
    assert.ok(e instanceof GatewayError && isUpstreamFault(e), String(e));
    // Said as what it is (a plain proxy's port given tls: true waits so), not as a network fault.
    assert.equal(e.message, 'upstream "mute" silent: upstream "mute" to 127.0.0.1:9: connected, no answer to the TLS handshake (a plain HTTP proxy? tls: false / http://) within 500ms');
    assert.equal(e.rep, Rep.TTL_EXPIRED);
    return true;
  });
  assert.deepEqual([mute.stats().attempts, mute.stats().failures], [1, 1]);

  const shut = createHttpOutbound('shut', http({ host: '127.0.0.1', port: closing.port, tls: true }), { dns, connectTimeout: 5_000 });
  await assert.rejects(bounded(shut.connect(to, ctx())), (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
});

test('an http or https proxy whose stream from the hop before it has already closed: the attempt fails at once, counted against the proxy, and never hangs', async (t) => {
  const hopEnd = await listenTracked(createServer((s) => s.on('error', () => {}).resume()), '127.0.0.1');
  t.after(() => hopEnd.close());
  // A hop that hands over a stream the far side has closed (the next proxy took the connection and dropped it).
  const hop: Outbound = {
    name: 'hop',
    connect: async () => {
      const socket = connect(hopEnd.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.destroy();
      await once(socket, 'close');
      return { socket };
    },
    close: async () => {},
  };
  const bounded = (p: Promise<unknown>): Promise<unknown> =>
    Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error('the dial never settled')), 10_000))]);
  for (const tls of [false, true]) {
    const out = createHttpOutbound('after-hop', http({ host: '127.0.0.1', port: 1, tls }), { dns, connectTimeout: 5_000, via: hop });
    const started = performance.now();
    await assert.rejects(bounded(out.connect({ host: '127.0.0.1', port: 9 }, ctx())), (e: unknown) => e instanceof GatewayError && isUpstreamFault(e));
    assert.ok(performance.now() - started < 2_500, `tls ${tls}: failed at once, not at connect_timeout`);
  }
});

/** An HTTP proxy that answers every CONNECT with `status` (a real one's refusal of a port, as tinyproxy's ConnectPort or squid's SSL_ports). */
async function startRefusingProxy(host: string, status: string): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const srv = createServer((s: Socket) => {
    s.on('error', () => {});
    let head = '';
    s.on('data', (b: Buffer) => {
      head += b.toString('latin1');
      if (head.includes('\r\n\r\n')) s.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\n\r\n`);
    });
  });
  return { host, ...(await listenTracked(srv, host)) };
}

test('a via hop that refuses to reach the next proxy (403) or cannot carry its address: 0x01, the next proxy unreachable, not a refusal of the destination', async (t) => {
  const hop = await startRefusingProxy('127.0.0.66', '403 Access violation');
  t.after(() => hop.close());
  const deps = { dns, connectTimeout: 3_000 };
  const via = createHttpOutbound('hop', http({ host: hop.host, port: hop.port }), deps);
  const last = createSocks5Outbound('last', { type: 'socks5', host: '127.0.0.67', port: 1080, remote_dns: true }, { ...deps, via });
  const err = await last.connect({ host: '127.0.0.1', port: 80 }, ctx()).then(
    () => assert.fail('connected'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof GatewayError);
  assert.equal(err.rep, Rep.GENERAL_FAILURE, err.message);
  assert.ok(isUpstreamFault(err));
  assert.match(err.message, /upstream "last" unreachable: .*403 Access violation/);
  // A socks4 hop asked for the next proxy's IPv6 address: not the client's address type.
  const four = createSocks4Outbound('four', { type: 'socks4', host: '127.0.0.68', port: 1080, remote_dns: true }, deps);
  const behind = createHttpOutbound('behind', http({ host: '::1', port: 3128 }), { ...deps, via: four });
  const e2 = await behind.connect({ host: '127.0.0.1', port: 80 }, ctx()).then(
    () => assert.fail('connected'),
    (e: unknown) => e,
  );
  assert.ok(e2 instanceof GatewayError);
  assert.equal(e2.rep, Rep.GENERAL_FAILURE, e2.message);
});
