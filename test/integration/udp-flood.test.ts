// A UDP flood is dropped and counted once an association, or the whole gateway, holds its
// byte budget; nothing is queued beyond it. Datagrams are made to wait with an upstream
// instrument written here: it takes the ASSOCIATE request and answers only when told to.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { ASSOCIATION_UDP_BYTES } from '../../src/outbound/byte-budget.js';
import { encodeUdpDatagram } from '../../src/protocol/messages.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { memoryLogger, waitForLog } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { listenTracked } from '../helpers/servers.js';
import { socksUdpClient, type SocksUdpClient } from '../helpers/udp.js';

const SIZE = 32 * 1024;

/** Greets, reads the ASSOCIATE request, and says nothing more until `refuse()` (REP 0x01). */
async function startHeldUpstream(): Promise<{ port: number; refuse(): void; close(): Promise<void> }> {
  const held = new Set<Socket>();
  const server = createServer((s) => {
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => {
      if (step++ === 0) s.write(Buffer.from([5, 0]));
      else held.add(s);
    });
  });
  const { port, close } = await listenTracked(server);
  const refuse = (): void => {
    for (const s of held) s.end(Buffer.from([5, 1, 0, 1, 0, 0, 0, 0, 0, 0]));
    held.clear();
  };
  return { port, refuse, close };
}

async function startFloodGateway(upstreamPort: number, udpBufferBytes?: number) {
  const config = parseConfig(
    stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      upstreams: { held: { type: 'socks5', host: '127.0.0.1', port: upstreamPort } },
      default: 'held',
      limits: { connect_timeout: '60s' },
    }),
    '/tmp/socksgate-test.yaml',
    {},
  );
  const { log, logs } = memoryLogger();
  const gw = await Gateway.start(config, udpBufferBytes === undefined ? { log } : { log, udpBufferBytes });
  return { gw, port: gw.addresses[0]!.port, logs };
}

/** A held upstream, a gateway routing everything to it and one association, all closed after the test. */
async function floodSetup(t: TestContext) {
  const upstream = await startHeldUpstream();
  t.after(() => upstream.close());
  const { gw, port, logs } = await startFloodGateway(upstream.port);
  t.after(() => gw.close(0));
  const c = await socksUdpClient({ host: '127.0.0.1', port });
  t.after(() => c.close());
  return { upstream, gw, logs, c };
}

/** The gateway's socksgate_udp_buffered_bytes; NaN if it has no such gauge. */
async function buffered(gw: Gateway): Promise<number> {
  const metric = await gw.metrics.registry.getSingleMetric('socksgate_udp_buffered_bytes')?.get();
  return metric?.values[0]?.value ?? Number.NaN;
}

/** Sends `n` datagrams of SIZE bytes, one at a time; returns the most the gateway held meanwhile. */
async function flood(c: SocksUdpClient, gw: Gateway, n: number): Promise<number> {
  const frame = encodeUdpDatagram({ host: '127.0.0.1', port: 9 }, Buffer.alloc(SIZE, 0x61));
  let most = 0;
  for (let i = 0; i < n; i++) {
    await new Promise((resolve) => c.socket.send(frame, c.relay.port, c.relay.host, resolve));
    await new Promise((resolve) => setImmediate(resolve));
    most = Math.max(most, await buffered(gw));
  }
  return most;
}

type Udp = { sent: number; received: number; dropped: Record<string, number> };
/** The access-log `udp` field of the association whose control connection left from `localPort`. */
const udpOf = async (logs: Array<Record<string, unknown>>, localPort: number | undefined): Promise<Udp | undefined> =>
  (await waitForLog(logs, (l) => l['cmd'] === 'udp' && l['client'] === `127.0.0.1:${localPort}`))?.['udp'] as Udp | undefined;

test('one association holds at most its byte budget; the rest of a flood is dropped as queue_full', async (t) => {
  const { upstream, gw, logs, c } = await floodSetup(t);

  // 160 × 32 KiB = 5 MiB, all for a destination whose channel is still opening.
  const most = await flood(c, gw, 160);
  upstream.refuse();
  const localPort = c.control.localPort;
  await c.close();
  const udp = await udpOf(logs, localPort);
  assert.ok((udp?.dropped['queue_full'] ?? 0) > 0, `a flood past the budget is dropped: ${JSON.stringify(udp)}`);
  assert.equal(
    await metricValue(gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'queue_full' }),
    udp?.dropped['queue_full'],
    'and counted in /metrics by reason',
  );
  assert.ok(most > 0 && most <= ASSOCIATION_UDP_BYTES, `held ${most} bytes at most`);
  assert.equal(await buffered(gw), 0, 'everything held is given back');
});

test('the gateway-wide budget bites an association that is within its own', async (t) => {
  const upstream = await startHeldUpstream();
  t.after(() => upstream.close());
  const total = ASSOCIATION_UDP_BYTES + ASSOCIATION_UDP_BYTES / 2;
  const { gw, port, logs } = await startFloodGateway(upstream.port, total);
  t.after(() => gw.close(0));
  const a = await socksUdpClient({ host: '127.0.0.1', port });
  t.after(() => a.close());
  const b = await socksUdpClient({ host: '127.0.0.1', port });
  t.after(() => b.close());

  const mostA = await flood(a, gw, (2 * ASSOCIATION_UDP_BYTES) / SIZE); // fills its own budget
  // B alone would hold all of this (1.5 budgets' worth is more than the half left, less than its own).
  const mostB = await flood(b, gw, (1.5 * ASSOCIATION_UDP_BYTES) / SIZE);
  upstream.refuse();
  const [pa, pb] = [a.control.localPort, b.control.localPort];
  await a.close();
  await b.close();
  const udpB = await udpOf(logs, pb);
  assert.ok((udpB?.dropped['queue_full'] ?? 0) > 0, `B is cut by the gateway's budget: ${JSON.stringify(udpB)}`);
  assert.ok((await udpOf(logs, pa)) !== undefined);
  assert.ok(Math.max(mostA, mostB) <= total, `held ${Math.max(mostA, mostB)} of ${total} bytes at most`);
  assert.equal(await buffered(gw), 0, 'everything held is given back');
});

test('tiny datagrams are charged what holding them costs, not just their bytes: a flood of them is cut at the budget', async (t) => {
  const { upstream, gw, logs, c } = await floodSetup(t);

  // 4 000 datagrams of 10 bytes: 40 kB by their bytes, far more as objects held.
  const N = 4_000;
  const frame = encodeUdpDatagram({ host: '127.0.0.1', port: 9 }, Buffer.alloc(10, 0x61));
  let most = 0;
  for (let i = 0; i < N; i += 100) {
    for (let j = 0; j < 100; j++) c.socket.send(frame, c.relay.port, c.relay.host);
    await new Promise((resolve) => setTimeout(resolve, 5));
    most = Math.max(most, await buffered(gw));
  }
  const queueFull = (): Promise<number> => metricValue(gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'queue_full' });
  upstream.refuse();
  const localPort = c.control.localPort;
  await c.close();
  const udp = await udpOf(logs, localPort);
  assert.ok((udp?.dropped['queue_full'] ?? 0) > 0, `the flood is cut at the budget: ${JSON.stringify(udp)}`);
  assert.equal(await queueFull(), udp?.dropped['queue_full']);
  assert.ok(most > 0 && most <= ASSOCIATION_UDP_BYTES, `held ${most} bytes at most`);
  assert.equal(await buffered(gw), 0, 'everything held is given back');
});

test('destinations routed at once are bounded: datagrams to more new names than that are dropped, not looked up', async (t) => {
  const names = Array.from({ length: 600 }, (_, i) => `n${i}.tarpit.test`);
  // The name server never answers: each lookup stays in flight.
  const dns = await startDnsServer(Object.fromEntries(names.map((n) => [n, { silent: true }])));
  t.after(() => dns.close());
  const config = parseConfig(
    stringify({
      listen: [{ host: '127.0.0.1', port: 0 }],
      dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '60s' },
      // A CIDR rule: every name is resolved before its route is known.
      rules: [{ name: 'intranet', cidrs: ['10.0.0.0/8'], action: 'block' }],
      default: 'direct',
    }),
    '/tmp/socksgate-test.yaml',
    {},
  );
  const { log, logs } = memoryLogger();
  const gw = await Gateway.start(config, { log });
  t.after(() => gw.close(0));
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.addresses[0]!.port });
  t.after(() => c.close());

  const asked = (): number => names.filter((n) => dns.queries(n) > 0).length;
  // No series until the first drop.
  const queueFull = async (): Promise<number> => (await metricValue(gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'queue_full' })) || 0;
  /** Waits (bounded) until the gateway has taken `n` datagrams: looked their name up or dropped them. */
  const taken = async (n: number): Promise<void> => {
    for (let waited = 0; asked() + (await queueFull()) < n && waited < 10_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
  };
  // In batches, each once the gateway has read the one before: a burst of 600 would overflow the relay socket's
  // receive buffer, and so would a batch sent after a pause the gateway, on a loaded machine, had not kept up with.
  for (let i = 0; i < names.length; i += 50) {
    for (const name of names.slice(i, i + 50)) c.socket.send(encodeUdpDatagram({ host: name, port: 9 }, Buffer.from('x')), c.relay.port, c.relay.host);
    await taken(Math.min(i + 50, names.length));
  }
  const localPort = c.control.localPort;
  assert.ok(asked() <= 256, `at most 256 names looked up at once (${asked()} of ${names.length})`);
  assert.equal(asked() + (await queueFull()), names.length, 'every other datagram dropped as queue_full');
  await c.close();
  const udp = await udpOf(logs, localPort);
  assert.equal(udp?.dropped['queue_full'], names.length - asked());
});
