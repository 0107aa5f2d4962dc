// Upstream hops: pick time of a 1000-member pool per strategy; connections per second
// and throughput through one microsocks hop, straight vs our socks5 outbound vs the
// whole gateway (the gateway's own cost per hop).
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { pino } from 'pino';
import { POOL_STRATEGIES } from '../src/config/types.js';
import { parseConfig } from '../src/config/load.js';
import { createResolver } from '../src/dns/resolver.js';
import { Gateway } from '../src/gateway.js';
import { createPoolOutbound } from '../src/outbound/pool.js';
import { createSocks5Outbound } from '../src/outbound/socks5.js';
import type { Outbound } from '../src/outbound/types.js';
import { startMicrosocks } from '../test/helpers/upstreams.js';
import { SocksClient } from 'socks';
import { closeServer, echoServer, fmt, listen, sinkServer } from './lib.js';

const MEMBERS = 1_000;
const PICKS = 20_000;
const CONNECTIONS = 1_000;
const CONCURRENCY = 20;
const BYTES = 256 * 1024 * 1024;

const silent = pino({ level: 'silent' });

/** A `socks` client CONNECT through the proxy at 127.0.0.1:proxyPort. */
async function socksConnect(proxyPort: number, destPort: number): Promise<Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: proxyPort, type: 5 },
    command: 'connect',
    destination: { host: '127.0.0.1', port: destPort },
    timeout: 5_000,
  });
  return socket;
}

function pickTimes(): void {
  const members: Outbound[] = Array.from({ length: MEMBERS }, (_, i) => ({
    name: `socks5://u@10.${(i >> 8) & 255}.${i & 255}.1:1080`,
    connect: () => Promise.reject(new Error('unused')),
    close: async () => {},
  }));
  for (const strategy of POOL_STRATEGIES) {
    const pool = createPoolOutbound('bench', { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy }, { members: members.map((outbound) => ({ outbound, weight: 1, tags: {} })), log: silent });
    const keys = Array.from({ length: PICKS }, (_, i) => `session-${i}`);
    for (let i = 0; i < 1_000; i++) pool.pick(keys[i]!); // warm up
    const start = process.hrtime.bigint();
    for (const k of keys) pool.pick(k);
    const ns = Number(process.hrtime.bigint() - start) / PICKS;
    console.log(`pool pick, ${MEMBERS} members, ${strategy}: ${fmt(ns, 0)} ns/pick`);
  }
}

/**
 * `open()` then one echo round trip, CONNECTIONS times with CONCURRENCY in flight.
 * Connections per second, and how many failed (a busy host can run out of ephemeral ports).
 */
async function perSecond(open: () => Promise<{ socket: Socket; done?: () => void }>): Promise<{ rate: number; failed: number }> {
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const worker = async (): Promise<void> => {
    while (next++ < CONNECTIONS) {
      try {
        const { socket, done } = await open();
        socket.resume();
        socket.write('x');
        await once(socket, 'data');
        socket.destroy();
        done?.();
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { rate: CONNECTIONS / ((performance.now() - start) / 1000), failed };
}

const show = (r: { rate: number; failed: number }): string => `${fmt(r.rate, 0)}${r.failed ? ` (${r.failed} failed)` : ''}`;

async function pushThrough(s: Socket): Promise<number> {
  const block = Buffer.alloc(256 * 1024, 0x61);
  const start = performance.now();
  for (let sent = 0; sent < BYTES; sent += block.length) if (!s.write(block)) await once(s, 'drain');
  s.end();
  s.resume();
  await once(s, 'end');
  s.destroy();
  return BYTES / 1024 / 1024 / ((performance.now() - start) / 1000);
}

export async function run(): Promise<void> {
  pickTimes();
  const echo = echoServer();
  const echoPort = await listen(echo);
  const sink = sinkServer();
  const sinkPort = await listen(sink);
  const hop = await startMicrosocks({ host: '127.0.0.1' });
  const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
  const out = createSocks5Outbound('hop', { type: 'socks5', host: hop.host, port: hop.port, remote_dns: true }, { dns, connectTimeout: 5_000 });
  const config = parseConfig(
    `listen: [{ host: 127.0.0.1, port: 0 }]\nupstreams:\n  hop: { type: socks5, host: 127.0.0.1, port: ${hop.port} }\ndefault: hop\n`,
    '/tmp/socksgate-bench.yaml',
    {},
  );
  const gw = await Gateway.start(config, { log: silent });
  const gwPort = gw.addresses[0]!.port;
  try {
    const straight = await perSecond(async () => ({ socket: await socksConnect(hop.port, echoPort) }));
    const outbound = await perSecond(async () => {
      const c = await out.connect({ host: '127.0.0.1', port: echoPort }, { signal: new AbortController().signal, log: silent, sessionKey: 'bench' });
      return { socket: c.socket, done: c.release };
    });
    const gateway = await perSecond(async () => ({ socket: await socksConnect(gwPort, echoPort) }));
    console.log(`one microsocks hop, connections/s (${CONCURRENCY} in flight): client straight ${show(straight)}, socks5 outbound ${show(outbound)}, client via gateway ${show(gateway)}`);
    try {
      const tpStraight = await pushThrough(await socksConnect(hop.port, sinkPort));
      const tpGateway = await pushThrough(await socksConnect(gwPort, sinkPort));
      console.log(`one microsocks hop, 1 stream MiB/s: client straight ${fmt(tpStraight, 0)}, client via gateway ${fmt(tpGateway, 0)}`);
    } catch (err) {
      console.log(`one microsocks hop, throughput: failed (${(err as Error).message})`);
    }
  } finally {
    await gw.close(0);
    await hop.close();
    await closeServer(echo);
    await closeServer(sink);
    dns.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
