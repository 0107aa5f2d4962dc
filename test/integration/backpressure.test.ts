// A client that stops reading must stop its destination's writes (backpressure
// through the gateway), not make the gateway buffer everything it is sent.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo } from 'node:net';
import { gatewayTo, socksConnect, startGateway } from '../helpers/index.js';
import { startHeldListener } from '../helpers/instruments.js';

const OFFERED = 512 * 1024 * 1024;
/** Kernel socket buffers on both hops plus stream high-water marks stay far below this. */
const BOUND = 64 * 1024 * 1024;

test('a client that does not read holds its destination back; nothing piles up in the gateway', async (t) => {
  let written = 0;
  let stop = false;
  const server = createServer(async (s) => {
    s.on('error', () => {});
    const block = Buffer.alloc(1024 * 1024, 0x62);
    try {
      while (!stop && written < OFFERED && !s.destroyed) {
        written += block.length;
        if (!s.write(block)) await Promise.race([once(s, 'drain'), once(s, 'close')]);
      }
    } catch {
      // the client went away: reset mid-write
    }
  });
  const { gw, destPort } = await gatewayTo(t, server);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: destPort }, 3_000);
  // `socks` resumes the socket one turn after it resolves; pause after that, and count
  // what arrives anyway to be sure the client really stopped reading.
  await new Promise((r) => setImmediate(r));
  socket.pause(); // the client reads nothing from here on
  let received = 0;
  socket.on('data', (c: Buffer) => (received += c.length));
  socket.pause();

  // Wait until the destination's writes stall (no progress for 300 ms), bounded at 10 s.
  let last = -1;
  for (let waited = 0; waited < 10_000 && written !== last; waited += 300) {
    last = written;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(written < BOUND, `the destination got ${written} bytes out while the client read ${received}`);
  const heap = process.memoryUsage().arrayBuffers;
  assert.ok(heap < BOUND, `buffers held: ${heap}`);

  // Reading again lets the destination go on: its writes move well past where they stalled.
  const stalled = written;
  socket.resume();
  for (let waited = 0; waited < 10_000 && written < stalled + BOUND; waited += 50) await new Promise((r) => setTimeout(r, 50));
  assert.ok(written >= stalled + BOUND, `the destination got ${written - stalled} bytes more out once the client read again`);
  stop = true;
  socket.destroy();
});

test('a request body sent while its request is still being dialed waits in the client, not in the gateway', async (t) => {
  // The upstream accepts and never answers: the request stays at its dial (connect_timeout).
  const held = await startHeldListener();
  t.after(() => held.close());
  const gw = await startGateway({
    upstreams: { silent: { type: 'socks5', host: '127.0.0.1', port: held.port } },
    default: 'silent',
    limits: { connect_timeout: '30s' },
  });
  t.after(() => gw.close(), { timeout: 10_000 });
  const s = connect({ host: '127.0.0.1', port: gw.port });
  s.on('error', () => {});
  t.after(() => s.destroy());
  await once(s, 'connect');
  // The head with the start of the body in the same write, as an upload sends them: more
  // of the body in the first read than the request's buffer takes.
  const block = Buffer.alloc(1024 * 1024, 0x61);
  s.write(`POST http://127.0.0.1:9/upload HTTP/1.1\r\nHost: 127.0.0.1:9\r\nContent-Length: ${OFFERED}\r\n\r\n${block.toString('latin1')}`, 'latin1');
  let written = block.length;
  await held.accepting(1); // the dial is under way, nothing is forwarded yet
  // The rest as fast as the gateway takes it, until it stops taking any (bounded at 10 s).
  const pump = async (): Promise<void> => {
    while (written < OFFERED && !s.destroyed) {
      written += block.length;
      if (!s.write(block)) await Promise.race([once(s, 'drain'), once(s, 'close')]);
    }
  };
  void pump();
  let flushed = -1;
  for (let waited = 0; waited < 10_000 && s.bytesWritten !== flushed; waited += 300) {
    flushed = s.bytesWritten;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(s.bytesWritten < BOUND, `the gateway took ${s.bytesWritten} bytes of a body it had nowhere to send yet`);
  const heap = process.memoryUsage().arrayBuffers;
  assert.ok(heap < BOUND, `buffers held: ${heap}`);
  s.destroy();
});

test('an absolute-form HTTP response its client stops reading is logged as the client stopping, not the origin idle', async (t) => {
  const SIZE = 64 * 1024 * 1024;
  let stop = false;
  const origin = createHttpServer(async (_req, res) => {
    res.on('error', () => {});
    res.writeHead(200, { 'Content-Length': String(SIZE) });
    const block = Buffer.alloc(1024 * 1024, 0x62);
    // The origin sends all along, as fast as it is let.
    for (let sent = 0; !stop && sent < SIZE && !res.destroyed; sent += block.length) {
      if (!res.write(block)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
    res.end();
  });
  origin.listen(0, '127.0.0.1');
  await once(origin, 'listening');
  t.after(() => {
    stop = true;
    origin.closeAllConnections();
    origin.close();
  });
  const port = (origin.address() as AddressInfo).port;
  const gw = await startGateway({ limits: { idle_timeout: '1s' } });
  t.after(() => gw.close());
  // A raw client that sends its request and never reads a byte of the answer.
  const client = connect({ host: '127.0.0.1', port: gw.port });
  client.on('error', () => {});
  t.after(() => client.destroy());
  await once(client, 'connect');
  client.pause();
  client.write(`GET http://127.0.0.1:${port}/big HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  const line = await gw.accessLog((l) => l['dest'] === `127.0.0.1:${port}`, 15_000);
  assert.ok(line, 'the request is logged');
  assert.equal(line['error'], 'client stopped reading');
});
