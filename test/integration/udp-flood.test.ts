// A UDP flood is dropped and counted once an association, or the whole gateway, holds its
// byte budget; nothing is queued beyond it. Datagrams are made to wait with an upstream
// instrument written here: it takes the ASSOCIATE request and answers only when told to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { ASSOCIATION_UDP_BYTES } from '../../src/outbound/byte-budget.js';
import { encodeUdpDatagram } from '../../src/protocol/messages.js';
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
  const upstream = await startHeldUpstream();
  t.after(() => upstream.close());
  const { gw, port, logs } = await startFloodGateway(upstream.port);
  t.after(() => gw.close(0));
  const c = await socksUdpClient({ host: '127.0.0.1', port });
  t.after(() => c.close());

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
