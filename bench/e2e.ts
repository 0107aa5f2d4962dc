// The figures of issue 13, in one run: direct, a bare Node relay (`a.pipe(b)`), Dante,
// microsocks and socksgate (2 rules, access log at info, metrics listener on), each
// relay alone in its process pinned to core 0, the C load generator on core 1.
//
// Env: BENCH_BYTES (bytes per throughput run, default 512 MiB), BENCH_REPEAT (median of,
// default 3), BENCH_SECONDS (cycles run, default 5), BENCH_IDLE (idle connections for
// KiB/conn, default 10 000 or what the hard descriptor limit allows), BENCH_PROFILE=DIR (then one more cycles run with socksgate
// under --cpu-prof: the profile lands in DIR and its top functions are printed).
import { fmt } from './lib.js';
import { buildLoadgen, DIRECT, Loadgen, type TargetPorts, type Via } from './loadgen.js';
import { lagP99Ms, median, printTable, type Column, type Row } from './report.js';
import {
  NOFILE,
  startDanteProcess,
  startGatewayProcess,
  startMicrosocksProcess,
  startMinimalRelayProcess,
  treeRssKiB,
  type RelayProcess,
} from './processes.js';
import { printProfile } from './profile.js';

export const BYTES = Number(process.env.BENCH_BYTES ?? 512 * 1024 ** 2);
const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** 10 000 where the descriptor limit allows; a relay needs two per connection, and a few more. */
const IDLE = Number(process.env.BENCH_IDLE ?? Math.min(10_000, Math.floor((NOFILE - 200) / 200) * 100));
const PROFILE = process.env.BENCH_PROFILE;
const CONCURRENCY = 50;
const UDP_IN_FLIGHT = 32;

const ROWS: Row[] = [
  { key: 'up1', label: 'up, 1 stream (MB/s)' },
  { key: 'down1', label: 'down, 1 stream (MB/s)' },
  { key: 'down8', label: 'down, 8 streams (MB/s)' },
  { key: 'cycles', label: 'cycles/s' },
  { key: 'kib', label: `KiB/conn (idle, at ${fmt(IDLE, 0)})`, lowerIsBetter: true },
  { key: 'udp', label: 'UDP rt/s (512 B, 32 in flight)' },
  { key: 'lag', label: 'event-loop lag p99, cycles run (ms)', lowerIsBetter: true },
];

/** Runs `fn` and prints why it failed instead of stopping the whole bench. */
export async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    console.log(`  ${what}: ${(err as Error).message.split('\n')[0]}`);
    return undefined;
  }
}

/** MB/s of one direction, median of REPEAT runs. */
export async function throughput(lg: Loadgen, via: Via, ports: TargetPorts, dir: 'up' | 'down', streams: number, repeat = REPEAT): Promise<number> {
  const runs: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const target = dir === 'up' ? ports.sink : ports.source;
    runs.push((await lg.run([dir, via.kind, via.port, target, BYTES, streams], 240_000)).MBps!);
  }
  return median(runs);
}

export async function cycles(lg: Loadgen, via: Via, ports: TargetPorts, seconds = SECONDS): Promise<number> {
  const r = await lg.run(['cycles', via.kind, via.port, ports.echo, CONCURRENCY, seconds], seconds * 1000 + 60_000);
  if (r.errors! > 0 || r.mismatches! > 0) console.log(`  (${r.errors} failed cycles, ${r.mismatches} mismatched echoes)`);
  return r.per_s!;
}

/** RSS growth of the relay (and its children) per idle relayed connection, in KiB. */
async function idleKiB(lg: Loadgen, relay: RelayProcess, ports: TargetPorts): Promise<number> {
  const before = await treeRssKiB(relay.pid);
  const h = await lg.hold({ kind: relay.kind, port: relay.port }, ports.echo, IDLE);
  await new Promise((r) => setTimeout(r, 1_000)); // let the relay settle (lazy allocations, GC)
  const during = await treeRssKiB(relay.pid);
  const after = await h.release();
  if (h.held.held !== IDLE || after.mismatches! > 0 || after.verified !== IDLE) {
    console.log(`  (${relay.name}: held ${h.held.held} of ${IDLE}, then ${after.verified} echoed back, ${after.mismatches} mismatched)`);
  }
  return (during - before) / h.held.held!;
}

export async function udp(lg: Loadgen, port: number, ports: TargetPorts): Promise<number> {
  return (await lg.run(['udp', port, ports.udp, UDP_IN_FLIGHT, 3], 60_000)).per_s!;
}

async function measure(lg: Loadgen, ports: TargetPorts, name: string, relay: RelayProcess | undefined, udpToo: boolean): Promise<Column> {
  const via: Via = relay ? { kind: relay.kind, port: relay.port } : DIRECT;
  const col: Column = { name, values: {} };
  const v = col.values;
  v.up1 = await attempt(`${name} up`, () => throughput(lg, via, ports, 'up', 1));
  v.down1 = await attempt(`${name} down`, () => throughput(lg, via, ports, 'down', 1));
  v.down8 = await attempt(`${name} down x8`, () => throughput(lg, via, ports, 'down', 8));
  if (relay?.metricsPort) await lagP99Ms(relay.metricsPort); // the scrape resets the histogram
  v.cycles = await attempt(`${name} cycles`, () => cycles(lg, via, ports));
  if (relay?.metricsPort) v.lag = await attempt(`${name} lag`, () => lagP99Ms(relay.metricsPort!));
  if (relay) v.kib = await attempt(`${name} KiB/conn`, () => idleKiB(lg, relay, ports));
  if (udpToo) v.udp = await attempt(`${name} UDP`, () => udp(lg, relay?.port ?? 0, ports));
  return col;
}

async function withRelay(start: () => Promise<RelayProcess | undefined>, what: string, fn: (r: RelayProcess) => Promise<Column>): Promise<Column | undefined> {
  const relay = await attempt(`${what} start`, start);
  if (!relay) return undefined;
  try {
    return await fn(relay);
  } finally {
    await relay.stop();
  }
}

/** socksgate under --cpu-prof through one cycles run; the profile's top functions. */
async function profileCycles(lg: Loadgen, ports: TargetPorts, dir: string): Promise<void> {
  const gw = await startGatewayProcess({ nodeFlags: ['--cpu-prof', '--cpu-prof-dir', dir] });
  const from = Number(process.hrtime.bigint() / 1000n); // start-up (module loading, schema compile) left out
  let to: number;
  try {
    await cycles(lg, { kind: gw.kind, port: gw.port }, ports);
  } finally {
    to = Number(process.hrtime.bigint() / 1000n);
    await gw.stop(); // the profile is written as the process exits
  }
  await printProfile(dir, { from, to });
}

export async function run(): Promise<void> {
  const lg = new Loadgen(await buildLoadgen());
  const targets = await lg.serve();
  const { ports } = targets;
  try {
    console.log(`throughput: ${fmt(BYTES / 1024 ** 3, 2)} GiB per run, median of ${REPEAT}; cycles: ${SECONDS} s, ${CONCURRENCY} concurrent`);
    const columns: Column[] = [await measure(lg, ports, 'direct', undefined, true)];
    const bare = await withRelay(startMinimalRelayProcess, 'bare relay', (r) => measure(lg, ports, 'bare Node relay', r, false));
    const dante = await withRelay(startDanteProcess, 'Dante', (r) => measure(lg, ports, 'Dante', r, true));
    const micro = await withRelay(startMicrosocksProcess, 'microsocks', (r) => measure(lg, ports, 'microsocks', r, false));
    const gw = await withRelay(() => startGatewayProcess(), 'socksgate', (r) => measure(lg, ports, 'socksgate', r, true));
    for (const c of [bare, dante, micro, gw]) if (c) columns.push(c);
    printTable(ROWS, columns, 'socksgate', [
      ['bare Node relay', 'bare'],
      ['Dante', 'Dante'],
      ['direct', 'direct'],
    ]);
    if (PROFILE) await profileCycles(lg, ports, PROFILE);
  } finally {
    targets.stop();
  }
}
