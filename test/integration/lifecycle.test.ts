// The gateway object's own lifecycle: what reload and close leave behind.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { once } from 'node:events';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { startGateway } from '../helpers/index.js';

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

test('a port already taken fails start-up with EADDRINUSE, the proxy listener as the admin listener', async (t) => {
  const taken = createServer();
  taken.listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  await assert.rejects(startGateway({ listen: [{ host: '127.0.0.1', port }] }), { code: 'EADDRINUSE' });
  await assert.rejects(startGateway({ metrics: { host: '127.0.0.1', port } }), { code: 'EADDRINUSE' });
});

test('what is still open when the drain ends is cut, and its access-log line says so: SOCKS relay, CONNECT tunnel, forwarded request', async (t) => {
  // An origin that reads and never answers: the forwarded request is still waiting at the cut.
  const silent = createServer((s) => {
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
  for (let waited = 0; waited < 5_000 && gw.gw.connections.list().filter((c) => c.rule !== undefined).length < 3; waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 100));

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
