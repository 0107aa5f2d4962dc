// The other paths of issue 13, in the same run and with the same load generator as
// bench/e2e.ts: one upstream hop, 100 000 domains + 100 000 CIDRs loaded, HTTP CONNECT
// and absolute-form requests (socksgate once its HTTP front answers; apify's proxy-chain
// as the Node HTTP proxy to compare with; a bare HTTP CONNECT relay on node's HTTP server
// against the bare SOCKS5 relay), `workers: 2` against one, CONNECT by name, a
// larger young generation (a node flag an operator may set) against Node's default, and the
// floor under cycles/s: a relay on libuv's handles, below net.Socket.
// BENCH_PATHS=upstream,lists,http,workers,names,young,floor runs only those sections.
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDnsServer, type DnsRecord } from '../test/helpers/dns-server.js';
import { attempt, cycles, IDLE, idleKiB, REPEAT, SECONDS, throughput, warmUp } from './e2e.js';
import { closeServer, echoServer, fmt, listen, nextChunk, socksConnect, type Connector } from './lib.js';
import { buildLoadgen, Loadgen, type TargetPorts, type Via } from './loadgen.js';
import {
  startGatewayProcess,
  startHandleRelayProcess,
  startMicrosocksProcess,
  startMinimalConnectRelayProcess,
  startMinimalRelayProcess,
  startProxyChainProcess,
  treeRssKiB,
  TWO_RULES,
  type RelayProcess,
} from './processes.js';
import { median, scrape } from './report.js';
import { writeLists } from './router.js';

const LIST_SIZE = 100_000;
const viaOf = (r: RelayProcess): Via => ({ kind: r.kind, port: r.port });

async function using<T>(relay: RelayProcess | undefined, fn: (r: RelayProcess) => Promise<T>): Promise<T | undefined> {
  if (!relay) return undefined;
  try {
    return await fn(relay);
  } finally {
    await relay.stop();
  }
}

interface Figures {
  up1?: number;
  down1?: number;
  cycles?: number;
  absolute?: number;
}

/** A warm-up pass, one throughput run each way (the main table takes medians), then a cycles run. */
async function basic(lg: Loadgen, ports: TargetPorts, name: string, via: Via): Promise<Figures> {
  // Without it a gateway's first figures time its JIT warming up, against peers in C.
  await attempt(`${name} warm-up`, () => warmUp(lg, ports, via));
  return {
    up1: await attempt(`${name} up`, () => throughput(lg, via, ports, 'up', 1, 1)),
    down1: await attempt(`${name} down`, () => throughput(lg, via, ports, 'down', 1, 1)),
    cycles: await attempt(`${name} cycles`, () => cycles(lg, via, ports)),
  };
}

function show(name: string, f: Figures, base?: Figures): void {
  const part = (k: keyof Figures, unit: string): string | undefined => {
    const v = f[k];
    if (v === undefined) return undefined;
    const b = base?.[k];
    return `${fmt(v, 0)} ${unit}${b ? ` (${(v / b).toFixed(2)}×)` : ''}`;
  };
  const parts = [part('up1', 'MB/s up'), part('down1', 'MB/s down'), part('cycles', 'cycles/s'), part('absolute', 'absolute-form req/s')];
  console.log(`  ${name.padEnd(34)} ${parts.filter(Boolean).join(' | ')}`);
}

async function upstreamHop(lg: Loadgen, ports: TargetPorts): Promise<void> {
  console.log('one upstream hop (microsocks on core 0 beside the gateway):');
  await using(await startMicrosocksProcess(), async (micro) => {
    const straight = await basic(lg, ports, 'client → microsocks', viaOf(micro));
    const yaml = `upstreams: { hop: { type: socks5, host: 127.0.0.1, port: ${micro.port} } }\n${TWO_RULES.replace('action: direct', 'action: hop')}`;
    const hop = await using(await startGatewayProcess({ yaml }), (gw) => basic(lg, ports, 'socksgate → microsocks', viaOf(gw)));
    show('client → microsocks', straight);
    if (hop) show('client → socksgate → microsocks', hop, straight);
  });
}

async function bigLists(lg: Loadgen, ports: TargetPorts, plainCycles: number | undefined): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-lists-'));
  try {
    await writeLists(dir, LIST_SIZE);
    const yaml = `rules:
  - { name: lists, domains_file: ${join(dir, 'domains.txt')}, cidrs_file: ${join(dir, 'cidrs.txt')}, action: block }
  - { name: loopback, cidrs: [127.0.0.0/8], action: direct }
`;
    const started = performance.now();
    const c = await using(await startGatewayProcess({ yaml }), async (gw) => {
      const ready = performance.now() - started;
      console.log(`${fmt(LIST_SIZE, 0)} domains + ${fmt(LIST_SIZE, 0)} CIDRs loaded: started in ${fmt(ready / 1000, 1)} s`);
      await warmUp(lg, ports, viaOf(gw)); // as the reference run was
      return cycles(lg, viaOf(gw), ports);
    });
    if (c !== undefined) show('socksgate, lists loaded', { cycles: c }, plainCycles ? { cycles: plainCycles } : undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** True when the relay answers an HTTP CONNECT with 200 (bounded: 5 s). */
async function answersConnect(port: number, destPort: number): Promise<boolean> {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  s.write(`CONNECT 127.0.0.1:${destPort} HTTP/1.1\r\nHost: 127.0.0.1:${destPort}\r\n\r\n`);
  const first = await Promise.race([
    once(s, 'data').then(([c]) => String(c)),
    once(s, 'close').then(() => ''),
    new Promise<string>((r) => setTimeout(() => r(''), 5_000)),
  ]).catch(() => '');
  s.destroy();
  return /^HTTP\/1\.[01] 200/.test(first);
}

async function httpFigures(lg: Loadgen, ports: TargetPorts, name: string, relay: RelayProcess): Promise<Figures> {
  const f = await basic(lg, ports, name, { kind: 'http', port: relay.port });
  f.absolute = await attempt(`${name} absolute-form`, async () => (await lg.run(['absolute', relay.port, ports.http, SECONDS], SECONDS * 1000 + 60_000)).per_s!);
  return f;
}

async function httpProxies(lg: Loadgen, ports: TargetPorts, socks: Figures): Promise<void> {
  console.log('HTTP proxy (CONNECT: throughput and cycles; absolute-form GETs on one keep-alive connection):');
  const chain = await using(await attempt('proxy-chain start', startProxyChainProcess), (r) => httpFigures(lg, ports, 'proxy-chain', r));
  if (chain) show('proxy-chain (Node HTTP proxy)', chain);
  // ---- socksgate's HTTP front: measured once it answers a CONNECT ----
  await using(await startGatewayProcess(), async (gw) => {
    if (!(await answersConnect(gw.port, ports.echo))) {
      console.log('  socksgate HTTP CONNECT: skipped, the gateway answers an HTTP CONNECT with a close (no HTTP front yet)');
      return;
    }
    const f = await httpFigures(lg, ports, 'socksgate HTTP', gw);
    show('socksgate HTTP (× its SOCKS5)', f, socks);
    if (chain) show('socksgate HTTP (× proxy-chain)', f, chain);
    await frontsAlternating(lg, ports, gw);
  });
  await bareFronts(lg, ports);
  await idleFronts(lg, ports);
}

/**
 * RSS per idle tunnel, SOCKS5 against HTTP CONNECT, each front in a gateway of its own (one
 * that held connections before keeps the heap they grew), warmed through that front as the
 * main table's gateway is before its hold (throughput both ways, then cycles): what is left is
 * what each held connection costs, not the heap's first growth.
 */
async function idleFronts(lg: Loadgen, ports: TargetPorts): Promise<void> {
  const kib: Partial<Record<'socks5' | 'http', number>> = {};
  for (const kind of ['socks5', 'http'] as const) {
    kib[kind] = await using(await startGatewayProcess(), (gw) =>
      attempt(`socksgate ${kind} KiB/conn`, async () => {
        await warmUp(lg, ports, { kind, port: gw.port });
        await cycles(lg, { kind, port: gw.port }, ports);
        return idleKiB(lg, { ...gw, kind }, ports);
      }),
    );
  }
  const { socks5, http } = kib;
  if (socks5 === undefined || http === undefined) return;
  console.log(`  idle tunnels, ${fmt(IDLE, 0)} held, each front in a gateway of its own, warmed: SOCKS5 ${fmt(socks5, 1)} KiB/conn, HTTP CONNECT ${fmt(http, 1)} KiB/conn (${(http / socks5).toFixed(2)}×)`);
}

/**
 * The bare relays, SOCKS5 and HTTP CONNECT (node's HTTP server), each alone on core 0, warmed,
 * cycles runs in turn (medians of REPEAT): what node's HTTP server alone costs a tunnel against
 * the SOCKS5 handshake, the part of socksgate's HTTP-to-SOCKS5 ratio no gateway code can win back.
 */
async function bareFronts(lg: Loadgen, ports: TargetPorts): Promise<void> {
  const relays = [await startMinimalRelayProcess(), await startMinimalConnectRelayProcess()];
  try {
    for (const r of relays) await cycles(lg, viaOf(r), ports, 2);
    const runs: number[][] = relays.map(() => []);
    for (let i = 0; i < REPEAT; i++) for (const [k, r] of relays.entries()) runs[k]!.push(await cycles(lg, viaOf(r), ports));
    const [socks, http] = runs.map(median) as [number, number];
    show('bare SOCKS5 relay (a.pipe(b))', { cycles: socks });
    show('bare HTTP CONNECT relay (× it)', { cycles: http }, { cycles: socks });
  } finally {
    for (const r of relays) await r.stop();
  }
}

/**
 * The two fronts of one warmed-up gateway process, SOCKS5 and HTTP CONNECT run by run in turn
 * (medians of REPEAT): the comparison with the least between them but the protocol.
 */
async function frontsAlternating(lg: Loadgen, ports: TargetPorts, gw: RelayProcess): Promise<void> {
  const socks: Via = { kind: 'socks5', port: gw.port };
  const http: Via = { kind: 'http', port: gw.port };
  await cycles(lg, socks, ports, 2);
  await cycles(lg, http, ports, 2);
  const runs: Record<string, number[]> = { su: [], hu: [], sd: [], hd: [], sc: [], hc: [] };
  for (let i = 0; i < REPEAT; i++) {
    runs.su!.push(await throughput(lg, socks, ports, 'up', 1, 1));
    runs.hu!.push(await throughput(lg, http, ports, 'up', 1, 1));
    runs.sd!.push(await throughput(lg, socks, ports, 'down', 1, 1));
    runs.hd!.push(await throughput(lg, http, ports, 'down', 1, 1));
    runs.sc!.push(await cycles(lg, socks, ports));
    runs.hc!.push(await cycles(lg, http, ports));
  }
  const m = (k: string): number => median(runs[k]!);
  const s: Figures = { up1: m('su'), down1: m('sd'), cycles: m('sc') };
  show('socksgate SOCKS5, same process', s);
  show('socksgate HTTP (× SOCKS5, same process)', { up1: m('hu'), down1: m('hd'), cycles: m('hc') }, s);
}

/**
 * `workers: 2` against `workers: 1`, both up at once and free to use either core (the load
 * generator stays on core 1). Each is warmed with a short run first (every worker's JIT starts
 * cold), then rounds alternate between them: medians of REPEAT.
 */
async function workers(lg: Loadgen, ports: TargetPorts): Promise<void> {
  const one = await startGatewayProcess({ cores: '0,1' });
  try {
    await using(await startGatewayProcess({ cores: '0,1', yaml: `workers: 2\n${TWO_RULES}` }), async (two) => {
      await allWorkersReady(two);
      for (const gw of [one, two]) await cycles(lg, viaOf(gw), ports, 2);
      const runs: Array<[number, number]> = [];
      for (let i = 0; i < REPEAT; i++) runs.push([await cycles(lg, viaOf(one), ports), await cycles(lg, viaOf(two), ports)]);
      const a = median(runs.map((r) => r[0]));
      const b = median(runs.map((r) => r[1]));
      console.log(`workers, unpinned (after a warm-up run each, median of ${REPEAT} alternating runs): 1 → ${fmt(a, 0)} cycles/s, 2 → ${fmt(b, 0)} cycles/s (${(b / a).toFixed(2)}×)`);
    });
  } finally {
    await one.stop();
  }
}

/**
 * The floor under cycles/s: the bare relay (net.Socket and a.pipe(b)) against a relay on
 * libuv's handles (no net.Socket, no streams: bench/handle-relay-main.ts) and socksgate, all
 * on core 0, each warmed, then runs in turn (medians of REPEAT). What the handles gain over
 * the bare relay is what net.Socket and its streams cost per connection.
 */
async function floor(lg: Loadgen, ports: TargetPorts): Promise<void> {
  const relays = [await startMinimalRelayProcess(), await startHandleRelayProcess(), await startGatewayProcess()];
  try {
    for (const r of relays) await cycles(lg, viaOf(r), ports, 2);
    const runs: number[][] = relays.map(() => []);
    for (let i = 0; i < REPEAT; i++) for (const [k, r] of relays.entries()) runs[k]!.push(await cycles(lg, viaOf(r), ports));
    const [bare, handles, gateway] = runs.map(median) as [number, number, number];
    console.log(`cycles/s below net.Socket (median of ${REPEAT} runs in turn):`);
    show('bare Node relay (a.pipe(b))', { cycles: bare });
    show('relay on libuv handles (× bare)', { cycles: handles }, { cycles: bare });
    show('socksgate (× bare)', { cycles: gateway }, { cycles: bare });
  } finally {
    for (const r of relays) await r.stop();
  }
}

/** The young-generation size an operator may give node (NODE_OPTIONS): fewer scavenges per connection. */
const YOUNG_FLAG = '--max-semi-space-size=64';

/**
 * socksgate with YOUNG_FLAG against Node's default young generation: two gateways on core 0,
 * each warmed, then cycles runs alternating between them (medians of REPEAT), and what each
 * holds in RSS afterwards (the flag trades memory for CPU).
 */
async function youngGeneration(lg: Loadgen, ports: TargetPorts): Promise<void> {
  const plain = await startGatewayProcess();
  try {
    await using(await startGatewayProcess({ nodeFlags: [YOUNG_FLAG] }), async (young) => {
      for (const gw of [plain, young]) await cycles(lg, viaOf(gw), ports, 2);
      const runs: Array<[number, number]> = [];
      for (let i = 0; i < REPEAT; i++) runs.push([await cycles(lg, viaOf(plain), ports), await cycles(lg, viaOf(young), ports)]);
      const a = median(runs.map((r) => r[0]));
      const b = median(runs.map((r) => r[1]));
      const [rssA, rssB] = [await treeRssKiB(plain.pid), await treeRssKiB(young.pid)].map((k) => k / 1024);
      console.log(
        `young generation (${YOUNG_FLAG} against the default, median of ${REPEAT} alternating runs): ${fmt(a, 0)} → ${fmt(b, 0)} cycles/s (${(b / a).toFixed(2)}×); RSS afterwards ${fmt(rssA!, 0)} → ${fmt(rssB!, 0)} MiB`,
      );
    });
  } finally {
    await plain.stop();
  }
}

async function allWorkersReady(gw: RelayProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const ok = await scrape(gw.metricsPort!).then(
      () => true,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('the primary never served /metrics');
}

/** CONNECT by name through socksgate (Node clients), names answered by a local DNS server: warm cache vs a new name each time. */
async function domainConnects(): Promise<void> {
  const N = 2_000;
  const echo = echoServer();
  const echoPort = await listen(echo);
  const records: Record<string, DnsRecord> = { 'warm.bench': { A: ['127.0.0.1'], ttl: 3600 } };
  for (let i = 0; i < N; i++) records[`n${i}.bench`] = { A: ['127.0.0.1'], ttl: 3600 };
  const dns = await startDnsServer(records);
  // Servers left open by a failed run would keep the bench from ever exiting.
  try {
    await using(await startGatewayProcess({ yaml: `dns: { servers: ["127.0.0.1:${dns.port}"] }\n` }), async (gw) => {
      const perSecond = async (name: (i: number) => string): Promise<number> => {
        let next = 0;
        const connectTo: Connector = (p, d) => socksConnect(p, d, name(next++));
        const worker = async (): Promise<void> => {
          while (next < N) {
            const s = await connectTo(gw.port, echoPort);
            s.write('x');
            s.resume();
            await nextChunk(s, 'echo').finally(() => s.destroy());
          }
        };
        const t0 = performance.now();
        await Promise.all(Array.from({ length: 20 }, worker));
        return N / ((performance.now() - t0) / 1000);
      };
      const warm = await perSecond(() => 'warm.bench');
      const cold = await perSecond((i) => `n${i}.bench`);
      console.log(`CONNECT by name (Node clients): ${fmt(warm, 0)} conn/s warm cache, ${fmt(cold, 0)} conn/s cold (A+AAAA query each)`);
    });
  } finally {
    await dns.close();
    await closeServer(echo);
  }
}

/** BENCH_PATHS=workers,http,… runs only those sections (default: all). */
const ONLY = process.env.BENCH_PATHS?.split(',');
const wanted = (section: string): boolean => !ONLY || ONLY.includes(section);

export async function run(): Promise<void> {
  const lg = new Loadgen(await buildLoadgen());
  const targets = await lg.serve();
  const { ports } = targets;
  try {
    const socks = wanted('upstream') || wanted('lists') || wanted('http') ? ((await using(await startGatewayProcess(), (gw) => basic(lg, ports, 'socksgate', viaOf(gw)))) ?? {}) : {};
    if (socks.cycles !== undefined) show('socksgate SOCKS5 (reference for this section)', socks);
    if (wanted('upstream')) await attempt('upstream hop', () => upstreamHop(lg, ports));
    if (wanted('lists')) await attempt('lists', () => bigLists(lg, ports, socks.cycles));
    if (wanted('http')) await attempt('HTTP', () => httpProxies(lg, ports, socks));
    if (wanted('workers')) await attempt('workers', () => workers(lg, ports));
    if (wanted('young')) await attempt('young generation', () => youngGeneration(lg, ports));
    if (wanted('floor')) await attempt('floor', () => floor(lg, ports));
  } finally {
    targets.stop();
  }
  if (wanted('names')) await attempt('CONNECT by name', domainConnects);
}
