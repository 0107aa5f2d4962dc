// The gateway object's own lifecycle: what reload and close leave behind.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

test('a reload that lands after close() applies nothing: no health checks run for a stopped gateway', async (t) => {
  const seen: Socket[] = [];
  const member = createServer((s) => {
    seen.push(s);
    s.destroy();
  });
  member.listen(0, '127.0.0.1');
  await once(member, 'listening');
  t.after(() => member.close());
  const port = (member.address() as AddressInfo).port;

  const gw = await startGateway();
  await gw.close();
  const next = parseConfig(
    stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      upstreams: {
        pool: { type: 'pool', members: [`socks5://127.0.0.1:${port}`], health_check: { interval: '50ms', timeout: '1s', target: '127.0.0.1:9' } },
      },
      default: 'pool',
    }),
    '/tmp/socksgate-test.yaml',
    {},
  );
  await gw.gw.reload(next).catch(() => {});
  t.after(() => gw.gw.snapshot.outbounds.forEach((o) => void o.close()));
  // A health check round would start on the next turn and every 50 ms after.
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(seen.length, 0);
});

test('a port already taken fails start-up with EADDRINUSE, the proxy listener as the admin listener, naming which listener it is', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  await assert.rejects(startGateway({ listen: [{ host: '127.0.0.1', port: 0 }, { host: '127.0.0.1', port }] }), {
    code: 'EADDRINUSE',
    message: `listen[1] 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
  });
  await assert.rejects(startGateway({ metrics: { host: '127.0.0.1', port } }), {
    code: 'EADDRINUSE',
    message: `the admin listener (metrics) 127.0.0.1:${port}: address already in use (EADDRINUSE)`,
  });
});

test('what is still open when the drain ends is cut, and its access-log line says so: SOCKS relay, CONNECT tunnel, forwarded request', async (t) => {
  // An origin that reads and never answers: the forwarded request is still waiting at the cut.
  let reached = 0;
  const silent = createServer((s) => {
    reached++;
    s.on('error', () => {});
    s.resume();
  });
  silent.listen(0, '127.0.0.1');
  await once(silent, 'listening');
  t.after(() => silent.close());
  const dest = (silent.address() as AddressInfo).port;
  const gw = await startGateway({ limits: { drain_timeout: '10s' } });
  t.after(() => gw.close());

  const socks = connect(gw.port, '127.0.0.1');
  socks.on('error', () => {});
  socks.write(Buffer.from([0x05, 0x01, 0x00, 0x05, 0x01, 0x00, 0x01, 127, 0, 0, 1, dest >> 8, dest & 0xff]));
  const tunnel = connect(gw.port, '127.0.0.1');
  tunnel.on('error', () => {});
  tunnel.write(`CONNECT 127.0.0.1:${dest} HTTP/1.1\r\nHost: 127.0.0.1:${dest}\r\n\r\n`);
  const request = connect(gw.port, '127.0.0.1');
  request.on('error', () => {});
  request.write(`GET http://127.0.0.1:${dest}/ HTTP/1.1\r\nHost: 127.0.0.1:${dest}\r\n\r\n`);
  t.after(() => [socks, tunnel, request].forEach((s) => s.destroy()));
  // Each is relaying (or waiting on the origin) once the origin has its three connections.
  for (let waited = 0; waited < 5_000 && reached < 3; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.equal(reached, 3, 'the origin has the three connections');

  await gw.gw.close(100);
  const of = (protocol: string, status?: number) => (l: Record<string, unknown>) => l.protocol === protocol && l.status === status;
  for (const [what, pred] of [
    ['SOCKS5 relay', of('socks5')],
    ['CONNECT tunnel', of('http', 200)],
    ['forwarded request', (l: Record<string, unknown>) => l.protocol === 'http' && l.status !== 200],
  ] as const) {
    const line = await gw.accessLog(pred);
    assert.ok(line, `${what}: an access-log line`);
    assert.equal(line.error, 'gateway stopped', `${what}: ${JSON.stringify(line)}`);
  }
});

test('a drain lets kept-alive HTTP clients go after the answer they wait for: "Connection: close", nothing cut, no wait for drain_timeout', async (t) => {
  // The origin holds both answers until the drain has begun: one has not begun, one is half sent.
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const asked: string[] = [];
  const origin = createHttpServer((req, res) => {
    asked.push(req.url ?? '');
    if (req.url === '/begun') res.writeHead(200, { 'content-type': 'text/plain' }).write('first half, ');
    void released.then(() => res.end(req.url === '/begun' ? 'second half' : 'whole'));
  });
  const { port: dest, close } = await listenTracked(origin);
  t.after(close);
  const gw = await startGateway({ limits: { drain_timeout: '20s' } });
  t.after(() => gw.close());

  const clients = ['/waiting', '/begun'].map((path) => {
    const s = connect(gw.port, '127.0.0.1');
    s.on('error', () => {});
    t.after(() => s.destroy());
    s.write(`GET http://127.0.0.1:${dest}${path} HTTP/1.1\r\nHost: 127.0.0.1:${dest}\r\n\r\n`);
    return received(s, 8_000);
  });
  // Both requests at the origin, and the second answer's head out (keep-alive) with half its body.
  for (let waited = 0; asked.length < 2 || !clients[1]!.text.includes('first half'); waited += 20) {
    assert.ok(waited < 5_000, 'the origin has both requests');
    await new Promise((r) => setTimeout(r, 20));
  }

  const began = performance.now();
  const closing = gw.gw.close(20_000); // the drain begins here, before close() returns
  release();
  await Promise.all(clients.map((c) => c.end));
  const [waiting, begun] = clients;
  assert.ok(waiting!.ended, `the client waiting is let go after its answer: ${JSON.stringify(waiting!.text)}`);
  assert.match(waiting!.text, /^HTTP\/1\.1 200 [^]*\r\nconnection: close\r\n(?:[^]*\r\n)?\r\nwhole$/i);
  assert.ok(begun!.ended, `the client whose answer had begun is let go after it: ${JSON.stringify(begun!.text)}`);
  assert.match(begun!.text, /first half, [^]*second half\r\n0\r\n\r\n$/);
  await closing;
  assert.ok(performance.now() - began < 5_000, `the drain ended with its last answer, not at drain_timeout (${Math.round(performance.now() - began)} ms)`);
  for (const path of ['/waiting', '/begun']) {
    const line = await gw.accessLog((l) => l.protocol === 'http' && l.dest === `127.0.0.1:${dest}` && l.status === 200 && l.error === undefined);
    assert.ok(line, `${path}: logged as answered, not cut`);
  }
});

/** What `s` has received so far, and whether the peer has ended it; `end` settles on the end, or after `ms`. */
function received(s: Socket, ms: number): { text: string; ended: boolean; end: Promise<void> } {
  const got = { text: '', ended: false, end: Promise.resolve() };
  s.on('data', (c: Buffer) => (got.text += c.toString('latin1')));
  got.end = new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    s.once('end', () => {
      got.ended = true;
      clearTimeout(timer);
      resolve();
    });
  });
  return got;
}
