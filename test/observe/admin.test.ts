// The admin listener on its own, with a source made for the test: what it does when the
// source fails and when the listener itself reports an error.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request } from 'node:http';
import { createConnection, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import type { MetricsConfig } from '../../src/config/types.js';
import { startAdmin, type AdminSource } from '../../src/observe/admin.js';
import { errorAnswer, readApiRequest, sendAnswer } from '../../src/observe/api.js';
import { HttpError } from '../../src/observe/http.js';

const LISTEN: MetricsConfig = { host: '127.0.0.1', port: 0, per_user: false };

function recordingSource(overrides: Partial<AdminSource> = {}): { source: AdminSource; lines: Array<Record<string, unknown>>; failures: () => number } {
  const lines: Array<Record<string, unknown>> = [];
  let failures = 0;
  const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const source: AdminSource = {
    apiToken: () => undefined,
    metrics: async () => ({ body: 'm 1\n', type: 'text/plain' }),
    notReady: () => undefined,
    api: async () => {
      throw new Error('no /api here');
    },
    log,
    failed: () => void failures++,
    ...overrides,
  };
  return { source, lines, failures: () => failures };
}

test('a source that throws is a JSON 500, counted and logged; the listener keeps serving', async (t) => {
  const { source, lines, failures } = recordingSource({
    metrics: async () => {
      throw new Error('registry broke');
    },
  });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) });
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: 'internal error' });
  assert.equal(failures(), 1);
  assert.equal(lines.find((l) => l.msg === 'admin request failed')?.url, '/metrics');
  assert.equal((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) })).status, 200);
});

test('/readyz says why it is not ready', async (t) => {
  const { source } = recordingSource({ notReady: () => 'starting' });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/readyz`, { signal: AbortSignal.timeout(5_000) });
  assert.deepEqual([res.status, await res.text()], [503, 'starting\n']);
});

test('an error the listener reports after it listens (a failed accept) is logged, not thrown', async (t) => {
  const { source, lines, failures } = recordingSource();
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const err = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' });
  // Without a listener, emitting 'error' throws here (and would be an uncaught exception).
  assert.doesNotThrow(() => server.emit('error', err));
  assert.equal(failures(), 1);
  assert.equal(lines.find((l) => l.msg === 'admin listener error')?.err !== undefined, true);
  assert.equal((await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`, { signal: AbortSignal.timeout(5_000) })).status, 200);
});

/** GET `path` from the listener at `port` with `host` as the Host header; the status. */
function statusWithHost(port: number, path: string, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end();
  });
}

test('on loopback, a request naming another host (DNS rebinding) is refused on every path; addresses and localhost are served', async (t) => {
  const { source } = recordingSource({
    apiToken: () => 'admin-token-rebinding',
    api: async (_req, res) => void res.writeHead(200).end('{}'),
  });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const port = (server.address() as AddressInfo).port;
  for (const path of ['/metrics', '/healthz', '/', '/status.js', '/api/connections']) {
    for (const host of [`rebind.example:${port}`, 'rebind.example', `localhost.rebind.example:${port}`, '127.1']) {
      assert.equal(await statusWithHost(port, path, host), 421, `${path} Host: ${host}`);
    }
    for (const host of [`127.0.0.1:${port}`, '127.0.0.1', `localhost:${port}`, `LocalHost.:${port}`, `status.localhost:${port}`, `[::1]:${port}`]) {
      assert.equal(await statusWithHost(port, path, host), 200, `${path} Host: ${host}`);
    }
  }
});

/** A raw connection to the listener at `port`, and when it closed (ms after it opened). */
async function rawConnection(port: number): Promise<{ socket: Socket; closed: Promise<number>; received: () => string }> {
  const started = Date.now();
  const socket = createConnection({ host: '127.0.0.1', port });
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (c: Buffer) => (received += c.toString('latin1')));
  const closed = once(socket, 'close').then(() => Date.now() - started);
  await once(socket, 'connect');
  return { socket, closed, received: () => received };
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'still open'> =>
  Promise.race([p, new Promise<'still open'>((r) => setTimeout(() => r('still open'), ms).unref())]);

test('a request head that drips in (slowloris) is cut off after about 10 s, not node\'s 60 s and more', async (t) => {
  const { source } = recordingSource();
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const { socket, closed, received } = await rawConnection((server.address() as AddressInfo).port);
  t.after(() => socket.destroy());
  socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
  const drip = setInterval(() => socket.writable && socket.write('x-drip: 1\r\n'), 500);
  t.after(() => clearInterval(drip));
  const ms = await within(closed, 20_000);
  assert.ok(typeof ms === 'number' && ms >= 9_000 && ms < 13_000, `closed after ${String(ms)} ms`);
  assert.match(received(), /^HTTP\/1\.1 408/);
});

test('a body sent with a refused request is not read: the 401 ends the connection', async (t) => {
  const { source } = recordingSource({
    apiToken: () => 'admin-token-unread-body',
    api: async (req, res, url, token) => {
      try {
        await readApiRequest(req, url, token);
        res.writeHead(204).end();
      } catch (err) {
        if (!(err instanceof HttpError)) throw err;
        sendAnswer(res, errorAnswer(err));
      }
    },
  });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const { socket, closed, received } = await rawConnection((server.address() as AddressInfo).port);
  t.after(() => socket.destroy());
  socket.write('POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n');
  // An endless body, as fast as the socket takes it.
  const chunk = Buffer.concat([Buffer.from('10000\r\n'), Buffer.alloc(0x10000, 0x20), Buffer.from('\r\n')]);
  const pump = setInterval(() => socket.writable && socket.writableLength < 1 << 20 && socket.write(chunk), 5);
  t.after(() => clearInterval(pump));
  assert.notEqual(await within(closed, 5_000), 'still open');
  assert.match(received(), /^HTTP\/1\.1 401 .*\r\nconnection: close\r\n/is);
});

test('GETs without a body (probes, scrapes, the page) keep their connection for the next request; a 404 and a 405 too', async (t) => {
  const { source } = recordingSource({ apiToken: () => 'admin-token-keep-alive' });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  const { socket, closed, received } = await rawConnection((server.address() as AddressInfo).port);
  t.after(() => socket.destroy());
  const paths = ['/healthz', '/readyz', '/metrics', '/', '/status.js', '/nothing'];
  for (const path of paths) socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  socket.write('DELETE /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
  for (let waited = 0; waited < 5_000 && (received().match(/^HTTP\/1\.1 /gm) ?? []).length < paths.length + 1; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const statuses = [...received().matchAll(/^HTTP\/1\.1 (\d+)/gm)].map((m) => Number(m[1]));
  assert.deepEqual(statuses, [200, 200, 200, 200, 200, 404, 405]);
  assert.doesNotMatch(received(), /^connection: close/im);
  assert.equal(await within(closed, 500), 'still open');
});

test('scrapes asked while one is being rendered share its answer: a flood of /metrics costs one render, not one each', async (t) => {
  let asked = 0;
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { source } = recordingSource({
    metrics: async () => {
      asked++;
      await released;
      return { body: `m ${asked}\n`, type: 'text/plain' };
    },
  });
  const server = await startAdmin(LISTEN, source);
  t.after(() => server.close());
  t.after(release);
  const port = (server.address() as AddressInfo).port;
  const s = createConnection({ host: '127.0.0.1', port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  let got = '';
  s.on('data', (c: Buffer) => (got += c.toString('latin1')));
  // 50 pipelined in one write (about 2 KB, one read): node hands every one to the listener at once.
  const N = 50;
  s.write('GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'.repeat(N));
  for (let waited = 0; waited < 5_000 && asked === 0; waited += 10) await new Promise((r) => setTimeout(r, 10));
  const whileHeld = asked;
  release();
  for (let waited = 0; waited < 5_000 && (got.match(/\r\nm \d+\n/g)?.length ?? 0) < N; waited += 10) await new Promise((r) => setTimeout(r, 10));
  assert.equal(got.match(/^HTTP\/1\.1 200 /gm)?.length, N, 'every scrape answered');
  assert.equal(whileHeld, 1, 'one render for all of them');
  assert.equal(got.match(/\r\nm 1\n/g)?.length, N, 'each with that render');
});
