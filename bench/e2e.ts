// End to end through the gateway vs straight to the server vs a minimal Node relay:
// throughput with 1 and 8 streams, and connections per second. The relays run in
// processes of their own; the clients and servers share this one.
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { existsSync } from 'node:fs';
import { startDnsServer, type DnsRecord } from '../test/helpers/dns-server.js';
import { startDante, startMicrosocks } from '../test/helpers/upstreams.js';
import { closeServer, directConnect, echoServer, fmt, httpConnect, listen, sinkServer, socksConnect, within, type Connector } from './lib.js';
import { startGatewayProcess, startMinimalRelayProcess } from './processes.js';

const TOTAL = 512 * 1024 * 1024; // bytes per throughput run, split over the streams
const CPS_CONNECTIONS = 3_000;
const CPS_CONCURRENCY = 50;

async function pushAll(s: Socket, bytes: number): Promise<void> {
  const block = Buffer.alloc(256 * 1024, 0x61);
  for (let sent = 0; sent < bytes; sent += block.length) if (!s.write(block)) await once(s, 'drain');
  s.end();
  s.resume();
  await once(s, 'end');
  s.destroy();
}

async function throughput(connectTo: Connector, proxyPort: number, sinkPort: number, streams: number): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: streams }, () => connectTo(proxyPort, sinkPort)));
  const start = performance.now();
  await Promise.all(sockets.map((s) => pushAll(s, TOTAL / streams)));
  return TOTAL / 1024 / 1024 / ((performance.now() - start) / 1000); // MiB/s
}

async function connectionsPerSecond(connectTo: Connector, proxyPort: number, echoPort: number): Promise<number> {
  let started = 0;
  const one = async (): Promise<void> => {
    const s = await connectTo(proxyPort, echoPort);
    s.write('x');
    s.resume();
    await once(s, 'data');
    s.destroy();
  };
  const worker = async (): Promise<void> => {
    while (started < CPS_CONNECTIONS) {
      started++;
      await one();
    }
  };
  const start = performance.now();
  await Promise.all(Array.from({ length: CPS_CONCURRENCY }, worker));
  return CPS_CONNECTIONS / ((performance.now() - start) / 1000);
}

export async function run(): Promise<void> {
  const sink = sinkServer();
  const echo = echoServer();
  const [sinkPort, echoPort] = [await listen(sink), await listen(echo)];
  const relay = await startMinimalRelayProcess();
  const gw = await startGatewayProcess();
  // The C servers users compare with, when installed (the test dependencies bring them).
  const dante = existsSync('/usr/sbin/danted') ? await startDante({ host: '127.0.0.1' }) : undefined;
  const micro = existsSync('/usr/bin/microsocks') ? await startMicrosocks({ host: '127.0.0.1' }) : undefined;

  const targets: Array<[string, Connector, number]> = [
    ['direct', directConnect, 0],
    ['minimal relay', socksConnect, relay.port],
    ['socksgate', socksConnect, gw.port],
    ['socksgate http', httpConnect, gw.port], // the same gateway, HTTP CONNECT on the same port
  ];
  if (dante) targets.push(['dante', socksConnect, dante.port]);
  if (micro) targets.push(['microsocks', (p, d) => socksConnect(p, d, '127.0.0.1', true), micro.port]);
  const rows: Record<string, number[]> = {};
  for (const [name, connectTo, port] of targets) {
    try {
      rows[name] = [
        await within(60_000, `${name} 1 stream`, throughput(connectTo, port, sinkPort, 1)),
        await within(60_000, `${name} 8 streams`, throughput(connectTo, port, sinkPort, 8)),
        await within(60_000, `${name} conn/s`, connectionsPerSecond(connectTo, port, echoPort)),
      ];
    } catch (err) {
      console.log(`  ${name}: ${(err as Error).message}`);
    }
  }
  console.log('e2e (each relay in its own process; socksgate logs each connection at info):');
  console.log('  MiB/s 1 stream | MiB/s 8 streams | conn/s (CONNECT + echo round trip + close, 50 concurrent)');
  const base = rows['minimal relay']!;
  for (const [name, r] of Object.entries(rows)) {
    const ratio = r.map((v, i) => (v / base[i]!).toFixed(2)).join(' / ');
    console.log(`  ${name.padEnd(14)} ${fmt(r[0]!).padStart(8)} | ${fmt(r[1]!).padStart(8)} | ${fmt(r[2]!, 0).padStart(7)}   (× minimal relay: ${ratio})`);
  }
  await Promise.all([gw.stop(), relay.stop(), dante?.close(), micro?.close()]);
  await domainConnects(echoPort);
  await Promise.all([closeServer(sink), closeServer(echo)]);
}

/** CONNECT by name through the gateway, names answered by a local UDP DNS server: warm cache vs a new name each time. */
async function domainConnects(echoPort: number): Promise<void> {
  const records: Record<string, DnsRecord> = { 'warm.bench': { A: ['127.0.0.1'], ttl: 3600 } };
  for (let i = 0; i < CPS_CONNECTIONS; i++) records[`n${i}.bench`] = { A: ['127.0.0.1'], ttl: 3600 };
  const dns = await startDnsServer(records);
  const gw = await startGatewayProcess(`dns: { servers: ["127.0.0.1:${dns.port}"] }\n`);
  const byName = (name: (i: number) => string): Connector => {
    let i = 0;
    return (proxyPort, destPort) => socksConnect(proxyPort, destPort, name(i++));
  };
  const warm = await connectionsPerSecond(byName(() => 'warm.bench'), gw.port, echoPort);
  const cold = await connectionsPerSecond(byName((i) => `n${i}.bench`), gw.port, echoPort);
  console.log(`e2e: CONNECT by name through socksgate: ${fmt(warm, 0)} conn/s warm cache, ${fmt(cold, 0)} conn/s cold (A+AAAA query each)`);
  await gw.stop();
  await dns.close();
}
