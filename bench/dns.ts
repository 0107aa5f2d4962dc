// DNS hot paths: a cached lookup's cost, uncached lookups per second against a
// local UDP DNS server, and direct CONNECTs by name with the cache warm vs cold.

import { once } from 'node:events';
import { createServer } from 'node:net';
import { pino } from 'pino';
import type { DnsConfig } from '../src/config/types.js';
import { createResolver } from '../src/dns/resolver.js';
import { createDirectOutbound } from '../src/outbound/direct.js';
import { startDnsServer, type DnsRecord } from '../test/helpers/dns-server.js';

const NAMES = 4_000;
const CACHED_OPS = 300_000;
const CONCURRENCY = 50;

function config(port: number, over: Partial<DnsConfig> = {}): DnsConfig {
  return {
    servers: [`127.0.0.1:${port}`],
    cache_size: 10_000,
    negative_ttl: 30_000,
    timeout: 2_000,
    prefer: 'ipv4',
    hosts: {},
    ...over,
  };
}

/** Runs `task(i)` for i in [0, n) with `CONCURRENCY` in flight; returns operations per second. */
async function perSecond(n: number, task: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  const worker = async (): Promise<void> => {
    for (let i = next++; i < n; i = next++) await task(i);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return n / secs;
}

export async function run(): Promise<void> {
  const records: Record<string, DnsRecord> = { 'warm.bench': { A: ['127.0.0.1'], ttl: 3600 } };
  for (let i = 0; i < NAMES; i++) records[`n${i}.bench`] = { A: ['127.0.0.1'], ttl: 3600 };
  const server = await startDnsServer(records);
  const target = createServer((s) => s.end());
  target.listen(0, '127.0.0.1');
  await once(target, 'listening');
  const addr = target.address();
  const targetPort = addr && typeof addr === 'object' ? addr.port : 0;

  try {
    // Cached lookup: one name, awaited one at a time.
    const dns = createResolver(config(server.port));
    await dns.lookup('warm.bench');
    for (let i = 0; i < 10_000; i++) await dns.lookup('warm.bench'); // warm-up
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < CACHED_OPS; i++) await dns.lookup('warm.bench');
    const ns = Number(process.hrtime.bigint() - t0) / CACHED_OPS;
    console.log(`dns: cached lookup ${ns.toFixed(0)} ns/op`);

    // Uncached: every name new, A + AAAA over UDP to the local server.
    const half = NAMES / 2;
    const cold = await perSecond(half, (i) => dns.lookup(`n${i}.bench`).then(() => {}));
    console.log(`dns: uncached lookup ${cold.toFixed(0)} lookups/s (local UDP server, ${CONCURRENCY} in flight)`);
    dns.close();

    // Direct CONNECT by name: warm cache (one name) vs cold (a new name each time).
    const dns2 = createResolver(config(server.port));
    const direct = createDirectOutbound({ dns: dns2, connectTimeout: 5_000 });
    const log = pino({ level: 'silent' });
    const connectOnce = async (host: string): Promise<void> => {
      const ctx = { signal: new AbortController().signal, log, sessionKey: 'bench' }; // one per session
      const { socket } = await direct.connect({ host, port: targetPort }, ctx);
      socket.destroy();
    };
    const warm = await perSecond(half, () => connectOnce('warm.bench'));
    const coldConn = await perSecond(half, (i) => connectOnce(`n${half + i}.bench`));
    console.log(
      `dns: direct CONNECT by name ${warm.toFixed(0)} conn/s warm, ${coldConn.toFixed(0)} conn/s cold` +
        ` (warm/cold ${(warm / coldConn).toFixed(2)}x)`,
    );
    dns2.close();
  } finally {
    await server.close();
    await new Promise<void>((r) => target.close(() => r()));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
