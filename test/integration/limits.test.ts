import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closedWithin, rawClient, readBytes, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';

function connect(port: number, destPort: number) {
  return socksConnect(port, { host: '127.0.0.1', port: destPort }, 2_000);
}

test('beyond max_connections new clients are refused, not queued; room frees up again', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ limits: { max_connections: 2 } });
  t.after(() => gw.close());
  const a = (await connect(gw.port, echo.port)).socket;
  const b = (await connect(gw.port, echo.port)).socket;
  const third = await rawClient(gw.port);
  third.write(Buffer.from([5, 1, 0]));
  assert.equal((await readBytes(third, 2)).length, 0, 'no method selection for the refused client');
  assert.ok(await closedWithin(third));
  a.write('still served');
  const [chunk] = (await once(a, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'still served');
  a.destroy();
  await gw.accessLog((l) => l.rep === 0);
  const c = (await connect(gw.port, echo.port)).socket;
  c.destroy();
  b.destroy();
});

test('idle_timeout cuts a relay where nothing moves either way', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ limits: { idle_timeout: '300ms' } });
  t.after(() => gw.close());
  const { socket } = await connect(gw.port, echo.port);
  socket.write('x');
  await once(socket, 'data');
  assert.ok(await closedWithin(socket, 3_000));
  const line = await gw.accessLog((l) => l.error === 'idle');
  assert.equal(line?.rep, 0);
  assert.equal(line?.up, 1);
});
