// One association, several destinations: the relay remembers the last header it decoded and
// encoded and connects a direct socket while it has one destination. Each answer must still
// name its own source, the gateway's port must not change when a second destination comes,
// and the counters must come out the same.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo } from 'node:dgram';
import { once } from 'node:events';
import type { TestGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { startDante } from '../helpers/upstreams.js';
import { closeDgram, rawFrame, startUdpEchoServer, udpAssociation, udpLogLine } from '../helpers/udp.js';

const relayed = (gw: TestGateway, direction: string) => metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction, result: 'relayed' });

/** Test instrument (a silent UDP server): records who sent, answers only when told to. */
async function startSilentServer() {
  const socket = createSocket('udp4');
  const seen: RemoteInfo[] = [];
  let arrived: (() => void) | undefined;
  socket.on('message', (_msg, rinfo) => {
    seen.push(rinfo);
    arrived?.();
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: socket.address().port,
    seen,
    /** Resolves once a datagram has arrived (bounded). */
    firstArrival: (ms = 2_000) =>
      new Promise<boolean>((resolve) => {
        if (seen.length > 0) return resolve(true);
        const timer = setTimeout(() => resolve(false), ms);
        arrived = () => {
          clearTimeout(timer);
          resolve(true);
        };
      }),
    answer: (data: string, to: RemoteInfo) => socket.send(data, to.port, to.address),
    close: () => closeDgram(socket),
  };
}

test('a second destination keeps the port the first one saw, and the first one can still answer', async (t) => {
  const late = await startSilentServer();
  t.after(() => late.close());
  const { echo, c } = await udpAssociation(t);

  c.send({ host: '127.0.0.1', port: late.port }, 'first');
  assert.equal(await late.firstArrival(), true, 'the first destination got its datagram');
  c.send({ host: '127.0.0.1', port: echo.port }, 'second');
  const a = await c.receive();
  assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['127.0.0.1', echo.port, 'second']);
  const from = late.seen[0]!;
  assert.equal(echo.peers[0], `127.0.0.1:${from.port}`, 'both destinations see one source port');

  late.answer('late answer', from);
  const b = await c.receive();
  assert.deepEqual([b?.host, b?.port, b?.data.toString()], ['127.0.0.1', late.port, 'late answer']);
});

test('runs of datagrams to one destination, then another, then back: every answer names its source', async (t) => {
  const { echo: one, gw, c } = await udpAssociation(t);
  const two = await startUdpEchoServer();
  t.after(() => two.close());

  const plan = [one, one, two, two, one];
  for (const [i, to] of plan.entries()) {
    c.send({ host: '127.0.0.1', port: to.port }, `d${i}`);
    const a = await c.receive();
    assert.deepEqual([a?.port, a?.data.toString()], [to.port, `d${i}`], `datagram ${i}`);
  }
  // The same address as the last datagram with FRAG 1: not the same header, so still dropped.
  c.socket.send(rawFrame(one.port, 'frag', 1), c.relay.port, c.relay.host);
  assert.equal(await c.receive(300), undefined);
  await c.close();
  const line = await udpLogLine(gw, 2_000);
  assert.deepEqual(line?.['udp'], { sent: 5, received: 5, dropped: { frag: 1 } });
  assert.deepEqual([one.peers.length, two.peers.length], [3, 2]);
});

test('relayed datagrams are in /metrics while the association is open, and counted once', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);

  for (let i = 0; i < 3; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, `m${i}`);
    assert.equal((await c.receive())?.data.toString(), `m${i}`);
  }
  assert.deepEqual([await relayed(gw, 'up'), await relayed(gw, 'down')], [3, 3], 'read while open');
  c.send({ host: '127.0.0.1', port: echo.port }, 'm3');
  assert.equal((await c.receive())?.data.toString(), 'm3');
  await c.close();
  assert.ok(await udpLogLine(gw, 2_000));
  assert.deepEqual([await relayed(gw, 'up'), await relayed(gw, 'down')], [4, 4], 'read after the end');
});

test('through a SOCKS5 upstream, answers from two destinations in turn each name their own source', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const { echo: one, c } = await udpAssociation(t, {
    upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } },
    rules: [{ name: 'udp-out', commands: ['udp'], action: 'dante' }],
  });
  const two = await startUdpEchoServer();
  t.after(() => two.close());

  for (const [i, to] of [one, two, two, one].entries()) {
    c.send({ host: '127.0.0.1', port: to.port }, `u${i}`);
    const a = await c.receive();
    assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['127.0.0.1', to.port, `u${i}`], `datagram ${i}`);
  }
  for (const p of [...one.peers, ...two.peers]) assert.match(p, /^127\.0\.0\.5:/);
});

test('a dns.hosts address written in another form (long IPv6, upper case, hex IPv4-mapped): its answers come back on a shared socket', async (t) => {
  const first = await startUdpEchoServer('::1');
  t.after(() => first.close());
  const v4 = await startUdpEchoServer('127.0.0.1');
  t.after(() => v4.close());
  const { echo, gw, c } = await udpAssociation(
    t,
    { listen: [{ host: '::1', port: 0 }], dns: { hosts: { 'long.test': '0:0:0:0:0:0:0:1', 'mapped.test': '::FFFF:7F00:1' } } },
    { host: '::1' },
  );
  // A first destination, so the next ones share an unconnected socket and are told apart by their text.
  c.send({ host: '::1', port: first.port }, 'first');
  assert.equal((await c.receive())?.data.toString(), 'first');
  c.send({ host: 'long.test', port: echo.port }, 'long');
  const a = await c.receive();
  assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['::1', echo.port, 'long']);
  c.send({ host: 'mapped.test', port: v4.port }, 'mapped');
  const b = await c.receive();
  assert.deepEqual([b?.host, b?.port, b?.data.toString()], ['127.0.0.1', v4.port, 'mapped']);
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: 3, received: 3, dropped: {} });
});

test('an IPv6 destination the client names as text in another form (ATYP 3: long, upper-case IPv4-mapped): its answers come back on a shared socket', async (t) => {
  const first = await startUdpEchoServer('::1');
  t.after(() => first.close());
  const v4 = await startUdpEchoServer('127.0.0.1');
  t.after(() => v4.close());
  const { echo, gw, c } = await udpAssociation(t, { listen: [{ host: '::1', port: 0 }] }, { host: '::1' });
  // A first destination, so the next ones share an unconnected socket and are told apart by their text.
  c.send({ host: '::1', port: first.port }, 'first');
  assert.equal((await c.receive())?.data.toString(), 'first');
  // RFC 1928 §7 with ATYP 3: the address goes as the text the client wrote (`socks` would send ATYP 4).
  const byName = (name: string, port: number, data: string): void => {
    const head = Buffer.from([0, 0, 0, 3, name.length, ...Buffer.from(name, 'latin1'), port >> 8, port & 0xff]);
    c.socket.send(Buffer.concat([head, Buffer.from(data)]), c.relay.port, c.relay.host);
  };
  byName('0:0:0:0:0:0:0:1', echo.port, 'long');
  const a = await c.receive();
  assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['::1', echo.port, 'long']);
  byName('::FFFF:7F00:1', v4.port, 'mapped');
  const b = await c.receive();
  assert.deepEqual([b?.host, b?.port, b?.data.toString()], ['127.0.0.1', v4.port, 'mapped']);
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: 3, received: 3, dropped: {} });
});

test('an IPv4-mapped first destination (ATYP 4 ::ffff:a.b.c.d) does not cost a later IPv6 destination its answers', async (t) => {
  const v6 = await startUdpEchoServer('::1');
  t.after(() => v6.close());
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: '::ffff:127.0.0.1', port: echo.port }, 'mapped');
  const a = await c.receive();
  assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['127.0.0.1', echo.port, 'mapped']);
  c.send({ host: '::1', port: v6.port }, 'v6');
  const b = await c.receive();
  assert.deepEqual([b?.host, b?.port, b?.data.toString()], ['::1', v6.port, 'v6']);
  c.send({ host: '::ffff:127.0.0.1', port: echo.port }, 'mapped again');
  assert.equal((await c.receive())?.data.toString(), 'mapped again');
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: 3, received: 3, dropped: {} });
});

test('0.0.0.0 and :: as a later destination get their answers, as they do as the first one (the kernel sends them to loopback)', async (t) => {
  const other = await startUdpEchoServer('127.0.0.1');
  t.after(() => other.close());
  const v6 = await startUdpEchoServer('::1');
  t.after(() => v6.close());
  const other6 = await startUdpEchoServer('::1');
  t.after(() => other6.close());
  const { echo, gw, c } = await udpAssociation(t);
  // A first destination of each family, so the next ones share an unconnected socket.
  c.send({ host: '127.0.0.1', port: other.port }, 'first');
  assert.equal((await c.receive())?.data.toString(), 'first');
  c.send({ host: '::1', port: other6.port }, 'first6');
  assert.equal((await c.receive())?.data.toString(), 'first6');
  c.send({ host: '0.0.0.0', port: echo.port }, 'any4');
  const a = await c.receive();
  assert.deepEqual([a?.host, a?.port, a?.data.toString()], ['127.0.0.1', echo.port, 'any4']);
  c.send({ host: '::', port: v6.port }, 'any6');
  const b = await c.receive();
  assert.deepEqual([b?.host, b?.port, b?.data.toString()], ['::1', v6.port, 'any6']);
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: 4, received: 4, dropped: {} });
});
