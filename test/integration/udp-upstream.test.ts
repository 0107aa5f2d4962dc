import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { openSocks5Udp } from '../../src/outbound/socks5-udp.js';
import type { Destination } from '../../src/outbound/types.js';
import { freePort, startDante } from '../helpers/upstreams.js';
import { startUdpEchoServer } from '../helpers/udp.js';

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

test('an upstream that refuses the ASSOCIATE gives its REP back', async (t) => {
  // Accepts no-auth, then answers every request with REP 0x07.
  const server = createServer((s) => {
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => {
      s.write(step++ === 0 ? Buffer.from([5, 0]) : Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  await assert.rejects(openSocks5Udp({ host: '127.0.0.1', port }, ctx(), { connectTimeout: 2_000 }), (err: { rep: number }) => err.rep === 0x07);
});
