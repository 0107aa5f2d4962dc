import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { pino } from 'pino';
import { openSocks5Bind } from '../../src/outbound/socks5-bind.js';
import { startDante } from '../helpers/upstreams.js';

const ctx = () => ({ signal: new AbortController().signal, log: pino({ level: 'silent' }), sessionKey: 't' });

test('BIND through Dante: it listens on its address, the peer connects there, bytes flow', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  t.after(() => handle.close());
  assert.equal(handle.listening.host, '127.0.0.9');
  assert.notEqual(handle.listening.port, 0);
  const peer = connect({ host: handle.listening.host, port: handle.listening.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const { socket, peer: from } = await handle.accepted();
  t.after(() => socket.destroy());
  assert.deepEqual(from, { host: '127.0.0.1', port: peer.localPort });
  peer.write('hello binder');
  socket.resume();
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'hello binder');
});

test('closing a Dante BIND before a peer rejects accepted()', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  const waiting = handle.accepted();
  handle.close();
  await assert.rejects(waiting);
});
