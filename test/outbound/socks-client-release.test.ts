import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { openSocks5Bind } from '../../src/outbound/socks5-bind.js';
import { dialLiteral, openSocks5Udp, type UpstreamDialer } from '../../src/outbound/socks5-udp.js';
import { startDante } from '../helpers/upstreams.js';
import { startUdpEchoServer } from '../helpers/udp.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ctx = () => ({ signal: new AbortController().signal, log: pino({ level: 'silent' }), sessionKey: 't' });

/** A dialer to `upstream` that keeps a WeakRef to each control connection it opens. */
function watchedDialer(upstream: { host: string; port: number }, refs: Array<WeakRef<Socket>>): UpstreamDialer {
  return async (signal) => {
    const socket = await dialLiteral(upstream, signal);
    refs.push(new WeakRef(socket));
    return socket;
  };
}

function collect(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

// `socks` is given connect_timeout + 1 s: 1.2 s here, so its timers fire within each test.
const CONNECT_TIMEOUT = 200;

test("a UDP association through a SOCKS5 upstream is let go once it closes, though `socks` keeps a timer per handshake; the timer finds nothing to do when it fires", async (t) => {
  const gc = collect();
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const refs: Array<WeakRef<Socket>> = [];
  const dial = watchedDialer(dante, refs);
  // In a function of its own: an async function's frame may hold its last value until it returns.
  const associated = async (): Promise<void> => {
    const channel = await openSocks5Udp({ host: dante.host, port: dante.port }, ctx(), { connectTimeout: CONNECT_TIMEOUT, dial });
    const answer = new Promise<string>((resolve) => channel.onMessage((_from, payload) => resolve(payload.toString())));
    channel.send({ host: '127.0.0.1', port: echo.port }, Buffer.from('through dante'));
    assert.equal(await answer, 'through dante');
    channel.close();
  };
  for (let i = 0; i < 3; i++) await associated();
  assert.equal(refs.length, 3);
  await sleep(100); // the control connections' closes, and the turn after each handshake
  gc();
  await sleep(10);
  gc();
  assert.deepEqual(refs.map((r, i) => (r.deref() === undefined ? -1 : i)).filter((i) => i >= 0), [], 'every closed association collected, before the timers fired');
  // The timers fire here; an exception would fail the test.
  await sleep(1_300);
  const channel = await openSocks5Udp({ host: dante.host, port: dante.port }, ctx(), { connectTimeout: CONNECT_TIMEOUT, dial });
  channel.close();
});

test("a BIND through a SOCKS5 upstream is let go once it ends, though `socks` keeps a timer per handshake; the timer finds nothing to do when it fires", async (t) => {
  const gc = collect();
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const refs: Array<WeakRef<Socket>> = [];
  const deps = { connectTimeout: CONNECT_TIMEOUT, dial: watchedDialer(dante, refs) };
  const bound = async (): Promise<void> => {
    const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), deps);
    const peer = connect({ host: handle.listening.host, port: handle.listening.port, localAddress: '127.0.0.1' });
    peer.on('error', () => {});
    await once(peer, 'connect');
    const { socket } = await handle.accepted();
    peer.write('from the peer');
    socket.resume();
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    assert.equal(chunk.toString(), 'from the peer');
    socket.destroy();
    peer.destroy();
    handle.close();
  };
  for (let i = 0; i < 3; i++) await bound();
  // And one closed before a peer came: `socks` waits for its second reply until the close.
  const unanswered = async (): Promise<void> => {
    const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), deps);
    const waiting = handle.accepted();
    handle.close();
    await assert.rejects(waiting);
  };
  await unanswered();
  assert.equal(refs.length, 4);
  await sleep(100);
  gc();
  await sleep(10);
  gc();
  assert.deepEqual(refs.map((r, i) => (r.deref() === undefined ? -1 : i)).filter((i) => i >= 0), [], 'every ended BIND collected, before the timers fired');
  await sleep(1_300);
  await bound();
});
