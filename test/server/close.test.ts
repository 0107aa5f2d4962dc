// Cleanup runs once: closeClient twice arms one linger timer and one listener; the relay
// counts a socket destroyed just before it (closed, its 'close' still to come) once. A closed
// socket keeps none of our listeners or read hooks (letGoOnClose).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type Socket } from 'node:net';
import { closeClient, letGoOnClose } from '../../src/server/close.js';
import { relay } from '../../src/server/relay.js';
import { readHooks } from '../helpers/read-hooks.js';
import { listenTracked } from '../helpers/servers.js';
import { startEchoServer } from '../helpers/index.js';

/** A connected pair: [the accepted side, the client side]. */
async function pair(t: { after(fn: () => unknown): void }): Promise<[Socket, Socket]> {
  const accepted: Socket[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => accepted.push(s));
  const { port, close } = await listenTracked(server);
  t.after(() => close());
  const client = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(client, 'connect');
  while (accepted.length === 0) await new Promise((r) => setImmediate(r));
  t.after(() => client.destroy());
  return [accepted[0]!, client];
}

/** A connected pair and a socket connected to an echo server: the two sockets a relay joins. */
async function pairAndRemote(t: { after(fn: () => unknown): void }): Promise<[Socket, Socket, Socket]> {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const [server, client] = await pair(t);
  const remote = connect({ port: echo.port, host: '127.0.0.1', allowHalfOpen: true });
  t.after(() => remote.destroy());
  await once(remote, 'connect');
  return [server, client, remote];
}

test('closeClient is idempotent: one linger timer, one close listener, one end', async (t) => {
  const [server, client] = await pair(t);
  const listeners = server.listenerCount('close');
  const timers = t.mock.method(globalThis, 'setTimeout');
  closeClient(server, Buffer.from('bye'));
  closeClient(server, Buffer.from('bye'));
  closeClient(server);
  assert.equal(timers.mock.callCount(), 1);
  timers.mock.restore();
  assert.equal(server.listenerCount('close'), listeners + 1);
  let got = '';
  client.on('data', (c: Buffer) => (got += c.toString()));
  await once(client, 'end');
  assert.equal(got, 'bye');
  client.destroy();
  await once(server, 'close');
});

test('the relay resolves only once both sockets are closed, even when one was destroyed before it started', async (t) => {
  const [server, client, remote] = await pairAndRemote(t);
  // The client half-closes; its side is read to the end and destroyed: `closed` is true now,
  // and its 'close' event is still to come.
  client.end();
  server.resume();
  await once(server, 'end');
  server.pause();
  server.destroy();
  assert.ok(server.closed);
  const result = await relay(server, remote, { idleTimeout: 0 });
  assert.equal(result.reason, 'closed');
  // Counted twice, the relay would resolve on the first socket's 'close' with the remote still open.
  assert.ok(remote.closed, 'the remote is closed when the relay resolves');
});

test('a relayed pair lets go on close: no listener but a no-op for errors, no read hook, other close listeners still run', async (t) => {
  const [server, client, remote] = await pairAndRemote(t);
  server.pause();
  server.on('close', letGoOnClose);
  remote.on('close', letGoOnClose);
  const done = relay(server, remote, { idleTimeout: 60_000 });
  // The relay reads into the gateway's buffers: the hooks are there while it runs.
  assert.ok(readHooks(server).length > 0 && readHooks(remote).length > 0, 'the relay reads into our buffers');
  let later = 0;
  server.on('close', () => later++); // registered after letGoOnClose: still called
  client.write('ping');
  const [echoed] = (await once(client, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'ping');
  client.end();
  await done;
  for (const [name, s] of [['accepted', server], ['remote', remote]] as const) {
    assert.ok(s.closed, `${name} is closed`);
    assert.deepEqual(s.eventNames(), ['error'], `${name}: only an error listener is left`);
    assert.equal(s.listenerCount('error'), 1, `${name}: one error listener`);
    assert.doesNotThrow(() => s.emit('error', new Error('late')), `${name}: a late error is not unhandled`);
    assert.deepEqual(readHooks(s), [], `${name}: no read hook left`);
  }
  assert.equal(later, 1, 'a close listener after letGoOnClose ran');
});

test('a pipe into a socket that lets go on close still cleans up after itself: the source keeps no listener of it', async (t) => {
  const [server, client, remote] = await pairAndRemote(t);
  remote.on('close', letGoOnClose);
  const before = { data: server.listenerCount('data'), end: server.listenerCount('end') };
  server.pipe(remote); // the relay's fallback (a TLS upstream, a bandwidth-limited user)
  assert.equal(server.listenerCount('data'), before.data + 1, 'pipe listens on its source');
  client.write('x');
  await once(remote, 'data');
  remote.destroy();
  await once(remote, 'close');
  assert.equal(server.listenerCount('data'), before.data, "pipe's data listener is off the source");
  assert.equal(server.listenerCount('end'), before.end, "pipe's end listener is off the source");
  assert.deepEqual(remote.eventNames(), ['error'], `remote: ${remote.eventNames().map(String).join(', ')}`);
});
