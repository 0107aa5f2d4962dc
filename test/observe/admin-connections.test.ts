// Who may hold the admin listener's connections: one address cannot take them all, and idle
// connections held open cannot keep a probe or a scrape out.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { createConnection, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import type { MetricsConfig } from '../../src/config/types.js';
import { startAdmin, type AdminSource } from '../../src/observe/admin.js';

const LISTEN: MetricsConfig = { host: '127.0.0.1', port: 0, per_user: false };
const TOKEN = 'admin-token-for-the-test';

/**
 * A source whose /metrics and /api answer once `release()` runs (never, unless called);
 * `asked()` counts the /api requests, and the renders of /metrics (concurrent scrapes share one).
 */
function heldSource(): { source: AdminSource; release: () => void; asked: () => number } {
  let asked = 0;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const source: AdminSource = {
    apiToken: () => TOKEN,
    metrics: async () => {
      asked++;
      await released;
      return { body: 'm 1\n', type: 'text/plain' };
    },
    notReady: () => undefined,
    api: async (_req, res) => {
      asked++;
      await released;
      res.end('{}');
    },
    log: pino({ level: 'silent' }),
  };
  return { source, release, asked: () => asked };
}

interface Held {
  socket: Socket;
  closed: Promise<unknown>;
}

/** A connection from `from` (a 127/8 address) to the listener, closed by `t.after`. */
async function connectFrom(t: TestContext, port: number, from: string): Promise<Held> {
  const socket = createConnection({ host: '127.0.0.1', port, localAddress: from });
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  // Not once(): a reset would reject it, and a reset is one way of being dropped.
  const closed = new Promise<unknown>((r) => socket.once('close', r));
  await once(socket, 'connect');
  return { socket, closed };
}

/**
 * `from`'s whole share of 32: one connection waiting on its /metrics (which the held source
 * does not answer until released), then 31 idle ones, oldest first.
 */
async function busyThenIdle(t: TestContext, port: number, from: string, asked: () => number): Promise<{ busy: Held; idle: Held[] }> {
  const busy = await connectFrom(t, port, from);
  busy.socket.write('GET /metrics HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n');
  for (let waited = 0; waited < 5_000 && asked() < 1; waited += 20) await new Promise((r) => setTimeout(r, 20));
  const idle: Held[] = [];
  for (let i = 0; i < 31; i++) idle.push(await connectFrom(t, port, from));
  return { busy, idle };
}

/** The waiting connection gets its answer once the source is released: a 200. */
async function answered(busy: Held): Promise<void> {
  const [answer] = (await once(busy.socket, 'data')) as [Buffer];
  assert.match(answer.toString('latin1'), /^HTTP\/1\.1 200 /);
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'still open'> =>
  Promise.race([p, new Promise<'still open'>((r) => setTimeout(() => r('still open'), ms).unref())]);

/** /healthz asked from `from`, as a kubelet probe would: its status, or the error's code. */
function healthz(port: number, from = '127.0.0.1'): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', localAddress: from, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    req.end();
  });
}

/** Until the server has counted `n` connections or fewer (closes are seen a little later). */
async function settled(server: import('node:http').Server, atMost: number): Promise<number> {
  const open = (): Promise<number> => new Promise((resolve, reject) => server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  for (let waited = 0; waited < 5_000 && (await open()) > atMost; waited += 20) await new Promise((r) => setTimeout(r, 20));
  return open();
}

test('one address holding 300 idle connections keeps 32 of them, and /healthz from another address answers at once', async (t) => {
  const { source } = heldSource();
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const held: Held[] = [];
  for (let i = 0; i < 300; i++) held.push(await connectFrom(t, port, '127.0.0.2'));
  assert.equal(await settled(server, 32), 32, 'the listener keeps 32 of that address');
  const open = held.filter((h) => !h.socket.destroyed && !h.socket.readableEnded);
  assert.ok(open.length >= 32, `the first 32 stay (${open.length})`);
  assert.equal(await healthz(port), 200);
  assert.equal(await healthz(port, '127.0.0.3'), 200);
  assert.equal(await healthz(port, '127.0.0.2'), 200, 'that address\'s own 33rd connection replaces its oldest idle one');
  assert.ok((await settled(server, 32)) <= 32, 'and the address still holds 32 at most');
});

test('on a loopback listener every client is 127.0.0.1: one holding 32 idle connections keeps no probe out, and a request being answered is never cut', async (t) => {
  const { source, release, asked } = heldSource();
  t.after(release);
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const { busy, idle } = await busyThenIdle(t, port, '127.0.0.1', asked);
  assert.equal(await settled(server, 32), 32);
  assert.equal(await healthz(port, '127.0.0.1'), 200, 'the probe gets in');
  assert.notEqual(await within(idle[0]!.closed, 3_000), 'still open', 'the oldest idle connection of that address made room');
  assert.equal(busy.socket.destroyed, false, 'the connection waiting on its answer stays');
  release();
  await answered(busy);
});

test('a full listener: a new connection replaces the oldest idle one of the address holding the most; a request being answered is never cut', async (t) => {
  const { source, release, asked } = heldSource();
  t.after(release);
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  // 8 addresses with 28 each, and one with 32 whose oldest is waiting on its /metrics: 256.
  const others: Held[] = [];
  for (let a = 10; a < 18; a++) for (let i = 0; i < 28; i++) others.push(await connectFrom(t, port, `127.0.0.${a}`));
  const { busy, idle } = await busyThenIdle(t, port, '127.0.0.20', asked);
  assert.equal(await settled(server, 256), 256);
  // A probe from a new address: the listener is full, so the oldest idle connection of 127.0.0.20 goes.
  assert.equal(await healthz(port, '127.0.0.1'), 200, 'a probe from a new address gets in');
  assert.notEqual(await within(idle[0]!.closed, 3_000), 'still open', 'the oldest idle connection of the address holding the most is closed');
  assert.equal(busy.socket.destroyed, false, 'the connection waiting on its answer stays');
  assert.equal(idle.filter((h) => h.socket.destroyed).length, 1, 'one connection made room');
  assert.equal(others.filter((h) => h.socket.destroyed).length, 0, 'the other addresses keep theirs');
  release();
  await answered(busy);
});

test('connections beyond 256 while every one is being answered are dropped; the listener serves again once they go', async (t) => {
  const { source, release, asked } = heldSource();
  t.after(release);
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  const held: Held[] = [];
  for (let a = 10; a < 18; a++) {
    for (let i = 0; i < 32; i++) {
      const h = await connectFrom(t, port, `127.0.0.${a}`);
      // /api, not /metrics: each is a request of its own to the source (scrapes share a render).
      h.socket.write(`GET /api/stats HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TOKEN}\r\n\r\n`);
      held.push(h);
    }
  }
  for (let waited = 0; waited < 5_000 && asked() < 256; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.equal(asked(), 256, 'every request has reached the server');
  const extra = await connectFrom(t, port, '127.0.0.1');
  assert.notEqual(await within(extra.closed, 3_000), 'still open', 'the 257th connection is dropped');
  assert.equal(held.filter((h) => h.socket.destroyed).length, 0, 'no request being answered is cut');
  release();
  assert.equal(await healthz(port), 200);
});
