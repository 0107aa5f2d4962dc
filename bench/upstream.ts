// Upstream hops: pick time of a 1000-member pool per strategy (tags, weights, a tag
// filter, a sticky lifetime), build time of a 10 000-line members_file; connections per second
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
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildOutbounds, closeOutbounds } from '../src/outbound/build.js';
import type { PoolOutbound } from '../src/outbound/stats.js';
import type { MemberSpec } from '../src/outbound/types.js';
import type { SessionParams } from '../src/protocol/username.js';
import { startMicrosocks } from '../test/helpers/upstreams.js';
import { SocksClient } from 'socks';
import { closeServer, echoServer, fmt, listen, nextChunk, sinkServer } from './lib.js';

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

const COUNTRIES = ['de', 'us', 'fr', 'gb', 'nl'];

/** 1000 members with weights 1-3 and a country tag each, as a crawl pool would have. */
function benchMembers(): MemberSpec[] {
  return Array.from({ length: MEMBERS }, (_, i) => ({
    outbound: {
      name: `socks5://u@10.${(i >> 8) & 255}.${i & 255}.1:1080`,
      connect: () => Promise.reject(new Error('unused')),
      close: async () => {},
    },
    endpoint: `10.${(i >> 8) & 255}.${i & 255}.1:1080`,
    weight: 1 + (i % 3),
    tags: { country: COUNTRIES[i % COUNTRIES.length]! },
  }));
}

/**
 * CPU ns per `pick(key, params)` over PICKS distinct session keys, best of 3 runs: process
 * CPU time, so other processes on a busy machine do not count.
 */
function timePicks(pool: PoolOutbound, params: SessionParams | undefined): number {
  const keys = Array.from({ length: PICKS }, (_, i) => `session-${i}`);
  for (let i = 0; i < 5_000; i++) pool.pick(keys[i]!, params); // warm up
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const start = process.cpuUsage();
    for (const k of keys) pool.pick(k, params);
    const used = process.cpuUsage(start);
    best = Math.min(best, ((used.user + used.system) * 1_000) / PICKS);
  }
  return best;
}

function pickTimes(): void {
  const members = benchMembers();
  const pools = POOL_STRATEGIES.map((strategy) =>
    createPoolOutbound('bench', { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy }, { members, log: silent }),
  );
  for (const pool of pools) timePicks(pool, { country: 'de' }); // every shared path compiled before any is timed
  for (const strategy of POOL_STRATEGIES) {
    const pool = createPoolOutbound('bench', { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy }, { members, log: silent });
    const plain = timePicks(pool, undefined);
    const tagged = timePicks(pool, { country: 'de' });
    console.log(`pool pick, ${MEMBERS} members (weights 1-3, tagged), ${strategy}: ${fmt(plain, 0)} ns/pick; with -country-de (1 in 5 members): ${fmt(tagged, 0)} ns/pick`);
  }
  const sticky = createPoolOutbound('bench', { type: 'pool', members: [], members_scheme: 'socks5', ban_after: 3, strategy: 'sticky' }, { members, log: silent });
  const lifetime = timePicks(sticky, { lifetime: '5m' });
  console.log(`pool pick, ${MEMBERS} members, sticky with -lifetime-5m: ${fmt(lifetime, 0)} ns/pick`);
}

/** Builds a pool from a members_file of 10 000 lines (tags on every line), the way a reload does. */
async function membersFileCompile(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-'));
  try {
    const lines = Array.from({ length: 10_000 }, (_, i) => `socks5://u${i}:p${i}@10.${(i >> 8) & 255}.${i & 255}.1:1080#country=${COUNTRIES[i % COUNTRIES.length]}`);
    await writeFile(join(dir, 'proxies.txt'), `${lines.join('\n')}\n`);
    const text = 'upstreams:\n  crawl: { type: pool, strategy: sticky, members: [], members_file: proxies.txt }\n';
    const config = parseConfig(text, join(dir, 'socksgate.yaml'), {});
    const dns = createResolver(config.dns, { log: silent });
    const runs: number[] = [];
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const built = await buildOutbounds(config, { dns, log: silent });
      runs.push(performance.now() - start);
      await closeOutbounds(built);
    }
    dns.close();
    console.log(`members_file of 10 000 lines: built in ${fmt(Math.min(...runs), 1)} ms (best of 5; first ${fmt(runs[0]!, 1)} ms)`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * `open()` then one echo round trip, CONNECTIONS times with CONCURRENCY in flight.
 * Connections per second that echoed, and how many failed (a busy host can run out of ephemeral ports).
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
  // Only connections that echoed count toward the rate; a failed one is not a connection made.
  return { rate: (CONNECTIONS - failed) / ((performance.now() - start) / 1000), failed };
}

const show = (r: { rate: number; failed: number }): string => `${fmt(r.rate, 0)}${r.failed ? ` (${r.failed} failed)` : ''}`;

/** BYTES up to the sink; the clock stops when the sink says it read them all (see sinkServer). */
async function pushThrough(s: Socket): Promise<number> {
  const block = Buffer.alloc(256 * 1024, 0x61);
  const count = Buffer.alloc(8);
  count.writeBigUInt64BE(BigInt(BYTES));
  const start = performance.now();
  s.write(count);
  for (let sent = 0; sent < BYTES; sent += block.length) if (!s.write(block)) await once(s, 'drain');
  let answer = Buffer.alloc(0);
  try {
    while (answer.length < 8) answer = Buffer.concat([answer, await nextChunk(s, 'sink')]);
  } finally {
    s.destroy();
  }
  const arrived = answer.readBigUInt64BE(0);
  if (arrived !== BigInt(BYTES)) throw new Error(`the sink read ${arrived} of ${BYTES} bytes`);
  return BYTES / 1024 / 1024 / ((performance.now() - start) / 1000);
}

export async function run(): Promise<void> {
  pickTimes();
  await membersFileCompile();
  if (process.env['BENCH_PICKS_ONLY']) return;
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
