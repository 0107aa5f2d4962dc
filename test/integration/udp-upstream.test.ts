import { test } from '../helpers/test.js';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { createResolver } from '../../src/dns/resolver.js';
import { createSocks5Outbound } from '../../src/outbound/socks5.js';
import { openSocks5Udp } from '../../src/outbound/socks5-udp.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import type { Destination } from '../../src/outbound/types.js';
import { socksBind } from '../helpers/bind.js';
import { freePort, startDante, startMicrosocks, startTinyproxy } from '../helpers/upstreams.js';
import { metricValue } from '../helpers/metrics.js';
import { startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { startUdpEchoServer, socksUdpClient, udpAssociation, udpLogLine } from '../helpers/udp.js';

/** Gateway config routing UDP through the Dante at `dante`. */
const udpThrough = (dante: { host: string; port: number }) => ({
  upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } },
  rules: [{ name: 'udp-out', commands: ['udp'], action: 'dante' }],
});

const ctx = (signal = new AbortController().signal) => ({ signal, log: pino({ level: 'silent' }), sessionKey: 't' });

function nextMessage(listen: (l: (from: Destination, payload: Buffer) => void) => void, ms = 3_000): Promise<{ from: Destination; payload: Buffer } | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    listen((from, payload) => {
      clearTimeout(timer);
      resolve({ from, payload });
    });
  });
}

test('a UDP channel through Dante reaches the destination from Dante\'s address', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const channel = await openSocks5Udp({ host: dante.host, port: dante.port }, ctx(), { connectTimeout: 3_000 });
  t.after(() => channel.close());
  const answer = nextMessage((l) => channel.onMessage(l));
  channel.send({ host: '127.0.0.1', port: echo.port }, Buffer.from('via dante'));
  const got = await answer;
  assert.ok(got, 'an answer');
  assert.equal(got.payload.toString(), 'via dante');
  assert.deepEqual(got.from, { host: '127.0.0.1', port: echo.port });
  assert.match(echo.peers[0] ?? '', /^127\.0\.0\.5:/);
});

test('an upstream that is not listening rejects with its errno reply code', async () => {
  const port = await freePort('127.0.0.1');
  await assert.rejects(openSocks5Udp({ host: '127.0.0.1', port }, ctx(), { connectTimeout: 2_000 }), (err: { rep: number }) => err.rep === 0x05);
});

test('an upstream that refuses the ASSOCIATE gives its REP back (microsocks: 0x07, Dante blocking UDP: 0x02)', async (t) => {
  const micro = await startMicrosocks({ host: '127.0.0.62' }); // CONNECT only: 0x07 for anything else
  t.after(() => micro.close());
  await assert.rejects(openSocks5Udp({ host: micro.host, port: micro.port }, ctx(), { connectTimeout: 2_000 }), (err: { rep: number }) => err.rep === 0x07);
  const dante = await startDante({ host: '127.0.0.63', block: ['0.0.0.0/0'] });
  t.after(() => dante.close());
  await assert.rejects(openSocks5Udp({ host: dante.host, port: dante.port }, ctx(), { connectTimeout: 2_000 }), (err: { rep: number }) => err.rep === 0x02);
});

test('UDP routed to a Dante upstream: the echo server sees Dante\'s address', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const { echo, c } = await udpAssociation(t, udpThrough(dante));
  for (let i = 0; i < 3; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, `hop${i}`);
    const a = await c.receive();
    assert.equal(a?.data.toString(), `hop${i}`);
    assert.deepEqual([a?.host, a?.port], ['127.0.0.1', echo.port]);
  }
  assert.equal(echo.peers.length, 3);
  for (const p of echo.peers) assert.match(p, /^127\.0\.0\.5:/);
});

test('when the upstream ends its association, a later datagram opens a new one', async (t) => {
  const first = await startDante({ host: '127.0.0.5' });
  t.after(() => first.close());
  const { echo, c } = await udpAssociation(t, udpThrough(first));
  c.send({ host: '127.0.0.1', port: echo.port }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before');
  await first.close();
  const second = await startDante({ host: first.host, port: first.port });
  t.after(() => second.close());
  let answer: string | undefined;
  for (let i = 0; i < 5 && answer === undefined; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, 'after');
    answer = (await c.receive(500))?.data.toString();
  }
  assert.equal(answer, 'after');
});

test('UDP through a pool: the access-log line names the member that carried it', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const carrier = `socks5://${dante.host}:${dante.port}`;
  const { echo, gw, c } = await udpAssociation(t, {
    upstreams: { carry: { type: 'pool', members: [carrier] } },
    rules: [{ name: 'udp-out', commands: ['udp'], action: 'carry' }],
  });
  c.send({ host: '127.0.0.1', port: echo.port }, 'via the pool');
  assert.equal((await c.receive())?.data.toString(), 'via the pool');
  await c.close();
  const line = await udpLogLine(gw);
  assert.equal(line?.['outbound'], 'carry');
  assert.equal(line?.['member'], carrier);
});

test('a pool that fails to carry a later destination leaves the line naming the route and member that carried the datagrams', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const carrier = `socks5://${dante.host}:${dante.port}`;
  const { echo, gw, c } = await udpAssociation(t, {
    dns: { hosts: { 'dead.test': '127.0.0.1' } },
    upstreams: {
      carry: { type: 'pool', members: [carrier] },
      dead: { type: 'pool', members: [`socks5://127.0.0.1:${await freePort('127.0.0.1')}`] },
    },
    rules: [
      { name: 'to-dead', domains: ['dead.test'], action: 'dead' },
      { name: 'udp-out', commands: ['udp'], action: 'carry' },
    ],
  });
  c.send({ host: '127.0.0.1', port: echo.port }, 'carried');
  assert.equal((await c.receive())?.data.toString(), 'carried');
  c.send({ host: 'dead.test', port: echo.port }, 'lost');
  const failed = (): Promise<number> => metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'upstream_failed' });
  for (let i = 0; i < 100 && !((await failed()) > 0); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await failed(), 1);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { upstream_failed: 1 } });
  assert.equal(line?.['rule'], 'udp-out');
  assert.equal(line?.['outbound'], 'carry');
  assert.equal(line?.['member'], carrier);
  assert.match(String(line?.['error']), /dead|127\.0\.0\.1/, 'the error still says why datagrams were dropped');
});

test('a pool member that answers UDP ASSOCIATE or BIND with 0x07 (microsocks: CONNECT only) is passed over for one that carries it, and stays in rotation', async (t) => {
  const connectOnly = await startMicrosocks({ host: '127.0.0.224' });
  t.after(() => connectOnly.close());
  const dante = await startDante({ host: '127.0.0.225' });
  t.after(() => dante.close());
  const members = [`socks5://${connectOnly.host}:${connectOnly.port}`, `socks5://${dante.host}:${dante.port}`];
  // failover: the CONNECT-only member is asked first every time.
  const { echo, gw, c } = await udpAssociation(t, { upstreams: { carry: { type: 'pool', strategy: 'failover', members } }, default: 'carry' });
  c.send({ host: '127.0.0.1', port: echo.port }, 'carried');
  assert.equal((await c.receive(3_000))?.data.toString(), 'carried', 'the datagram went through the member that carries UDP');
  const bound = await socksBind(gw.port);
  bound.peer.catch(() => {});
  assert.equal(bound.bound.host, dante.host, 'the BIND went to the member that carries it');
  const pool = gw.gw.snapshot.outbounds.get('carry');
  assert.ok(pool && isPoolOutbound(pool));
  assert.deepEqual(pool.stats().map((s) => [s.healthy, s.consecutiveFailures]), [[true, 0], [true, 0]], 'a member without UDP or BIND is no dead member');
});

test('a session whose tag filters leave only members that cannot carry UDP (http) has its datagrams dropped as unsupported, not as a failed upstream retried', async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const dante = await startDante({ host: '127.0.0.226' });
  t.after(() => dante.close());
  const http = await startTinyproxy({ host: '127.0.0.227' });
  t.after(() => http.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw' }] },
    upstreams: { crawl: { type: 'pool', members: [`socks5://${dante.host}:${dante.port}#country=de`, `http://${http.host}:${http.port}#country=us`] } },
    default: 'crawl',
  });
  t.after(() => gw.close());
  // A series counted nowhere yet reads NaN: none.
  const result = async (r: string): Promise<number> => (await metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: r })) || 0;
  const de = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice-country-de', pass: 'pw' } });
  t.after(() => de.close());
  de.send({ host: '127.0.0.1', port: echo.port }, 'de');
  assert.equal((await de.receive(3_000))?.data.toString(), 'de', 'the member tagged de carries UDP');
  const us = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice-country-us', pass: 'pw' } });
  t.after(() => us.close());
  us.send({ host: '127.0.0.1', port: echo.port }, 'us');
  for (let i = 0; i < 100 && (await result('unsupported')) + (await result('upstream_failed')) === 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual([await result('unsupported'), await result('upstream_failed')], [1, 0]);
  await us.close();
  const line = await gw.accessLog((l) => l['user'] === 'alice' && JSON.stringify(l['udp'] ?? {}).includes('unsupported'));
  assert.match(String(line?.['error']), /no member matching country=us can carry udp/);
});

test('a stand-alone SOCKS5 upstream counts its UDP associations as a pool member does: attempts, failures, active until each ends', async (t) => {
  // Grants every ASSOCIATE (BND: a UDP socket of its own) and keeps each control connection until told.
  const relay = createSocket('udp4');
  relay.bind(0, '127.0.0.1');
  await once(relay, 'listening');
  t.after(() => relay.close());
  const controls: Socket[] = [];
  const srv = createServer((s) => {
    controls.push(s);
    s.on('error', () => {});
    s.once('data', () => {
      s.write(Buffer.from([5, 0]));
      s.once('data', () => s.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, relay.address().port >> 8, relay.address().port & 0xff])));
    });
  });
  const upstream = await listenTracked(srv, '127.0.0.1');
  t.after(() => upstream.close());
  const dns = createResolver({ cache_size: 10, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  const out = createSocks5Outbound('up', { type: 'socks5', host: '127.0.0.1', port: upstream.port, remote_dns: true }, { dns, connectTimeout: 3_000 });
  const channel = await out.openUdp!(ctx());
  t.after(() => channel.close());
  // The association's set-up time is the upstream's latency figure, as a connect's is.
  const counts = (): Omit<ReturnType<typeof out.stats>, 'latencyMs'> => {
    const { latencyMs, ...rest } = out.stats();
    assert.equal(typeof latencyMs, 'number', 'latency measured');
    return rest;
  };
  assert.deepEqual(counts(), { name: 'up', attempts: 1, failures: 0, active: 1, healthy: true }, 'an open association is an active connection');
  channel.close();
  channel.close();
  assert.deepEqual(counts(), { name: 'up', attempts: 1, failures: 0, active: 0, healthy: true }, 'closed (twice): let go once');
  // Ended by the upstream: no longer active, whether or not its user closes it.
  const ended = await out.openUdp!(ctx());
  t.after(() => ended.close());
  assert.equal(out.stats().active, 1);
  const gone = new Promise<void>((resolve) => ended.onEnd?.(resolve));
  controls.at(-1)!.destroy();
  await gone;
  assert.equal(out.stats().active, 0);
  // The upstream is down: each ASSOCIATE that cannot reach it is a failure of its own.
  await upstream.close();
  for (let i = 0; i < 3; i++) await assert.rejects(out.openUdp!(ctx()));
  assert.deepEqual(counts(), { name: 'up', attempts: 5, failures: 3, active: 0, healthy: false });
});

test("the control connection of a UDP association through an upstream has TCP keepalive, so an upstream gone without a FIN is found (the channel then ends like one the upstream closed)", async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const channel = await openSocks5Udp({ host: dante.host, port: dante.port }, ctx(), { connectTimeout: 3_000 });
  t.after(() => channel.close());
  // Nothing crosses it after the reply: only the kernel's probes can find the upstream gone.
  const at = (host: string, port: number): string => `${host.split('.').map((b) => Number(b).toString(16).toUpperCase().padStart(2, '0')).reverse().join('')}:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const timers = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[2] === at(dante.host, dante.port) && f[3] === '01')
    .map((f) => parseInt(f[5]!.split(':')[0]!, 16));
  assert.deepEqual(timers, [2], "keepalive probes due on the gateway's end (an established socket's sk_timer)");
});
