// The figures of issue 13, in one run: direct, a bare Node relay (`a.pipe(b)`) without and
// with the contract's per-connection duties (TCP_NODELAY, the real BND, an access-log line), Dante,
// microsocks and socksgate (2 rules, access log at info, metrics listener on), each
// relay alone in its process pinned to core 0, the C load generator on core 1. Figures are
// taken in rounds across the relays (interleaved), medians of BENCH_REPEAT rounds.
//
// Env: BENCH_BYTES (bytes per throughput run, default 512 MiB), BENCH_REPEAT (median of,
// default 3), BENCH_SECONDS (cycles run, default 5), BENCH_IDLE (idle connections for
// KiB/conn, default 10 000 or what the hard descriptor limit allows), BENCH_PROFILE=DIR (then one more cycles run with socksgate
// under --cpu-prof: the profile lands in DIR and its top functions are printed).
import { fmt } from './lib.js';
import { buildLoadgen, DIRECT, Loadgen, type TargetPorts, type Via } from './loadgen.js';
import { LAG_SAMPLING_MS, lagP99, median, printTable, type Column, type Row } from './report.js';
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
export const REPEAT = Number(process.env.BENCH_REPEAT ?? 3);
export const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** 10 000 where the descriptor limit allows; a relay needs two per connection, and a few more. */
export const IDLE = Number(process.env.BENCH_IDLE ?? Math.min(10_000, Math.floor((NOFILE - 200) / 200) * 100));
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
  { key: 'lag', label: `event-loop lag p99 past the ${LAG_SAMPLING_MS} ms sampling, cycles run (ms)`, lowerIsBetter: true },
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
  // The target closes first, so TIME_WAIT does not pile up on the relay's outbound ports.
  const r = await lg.run(['cycles', via.kind, via.port, ports.echo_close, CONCURRENCY, seconds], seconds * 1000 + 60_000);
  if (r.errors! > 0 || r.mismatches! > 0) console.log(`  (${r.errors} failed cycles, ${r.mismatches} mismatched echoes)`);
  return r.per_s!;
}

/** RSS growth of the relay (and its children) per idle relayed connection, in KiB. */
export async function idleKiB(lg: Loadgen, relay: RelayProcess, ports: TargetPorts): Promise<number> {
  const before = await treeRssKiB(relay.pid);
  const h = await lg.hold({ kind: relay.kind, port: relay.port }, ports.echo, IDLE);
  let during: number;
  try {
    await new Promise((r) => setTimeout(r, 1_000)); // let the relay settle (lazy allocations, GC)
    during = await treeRssKiB(relay.pid);
  } catch (err) {
    h.stop();
    throw err;
  }
  const after = await h.release();
  if (h.held.held !== IDLE || after.mismatches! > 0 || after.verified !== IDLE) {
    console.log(`  (${relay.name}: held ${h.held.held} of ${IDLE}, then ${after.verified} echoed back, ${after.mismatches} mismatched)`);
  }
  return (during - before) / h.held.held!;
}

export async function udp(lg: Loadgen, port: number, ports: TargetPorts): Promise<number> {
  return (await lg.run(['udp', port, ports.udp, UDP_IN_FLIGHT, 3], 60_000)).per_s!;
}

/** One relay under test: its column, and how the load generator reaches it (direct: none). */
interface Subject {
  col: Column;
  via: Via;
  relay?: RelayProcess;
  udp: boolean;
}

/**
 * Each figure is taken round by round across every relay (A, B, C, A, B, C …), not relay
 * after relay: on a shared machine the speed available drifts over minutes, and a drift
 * must not land on one column. Medians per relay, as before.
 */
async function interleaved(subjects: Subject[], key: string, what: string, once: (s: Subject) => Promise<number>, rounds = REPEAT): Promise<void> {
  const runs = new Map<Subject, number[]>(subjects.map((s) => [s, []]));
  for (let i = 0; i < rounds; i++) {
    for (const s of subjects) {
      const v = await attempt(`${s.col.name} ${what}`, () => once(s));
      if (v !== undefined) runs.get(s)!.push(v);
    }
  }
  for (const s of subjects) {
    const got = runs.get(s)!;
    if (got.length > 0) s.col.values[key] = median(got);
  }
}

/**
 * One short pass of every kind of run through each relay before any is measured: the first
 * round would otherwise time the Node relays' JIT and buffer pools warming up.
 */
export async function warmUp(lg: Loadgen, ports: TargetPorts, via: Via, udpPort?: number): Promise<void> {
  const bytes = Math.min(BYTES, 64 * 1024 ** 2);
  await lg.run(['up', via.kind, via.port, ports.sink, bytes, 1], 240_000);
  await lg.run(['down', via.kind, via.port, ports.source, bytes, 8], 240_000);
  await cycles(lg, via, ports, 2);
  if (udpPort !== undefined) await lg.run(['udp', udpPort, ports.udp, UDP_IN_FLIGHT, 1], 60_000);
}

async function measureAll(lg: Loadgen, ports: TargetPorts, subjects: Subject[]): Promise<void> {
  for (const s of subjects) await attempt(`${s.col.name} warm-up`, () => warmUp(lg, ports, s.via, s.udp ? (s.relay?.port ?? 0) : undefined));
  await interleaved(subjects, 'up1', 'up', (s) => throughput(lg, s.via, ports, 'up', 1, 1));
  await interleaved(subjects, 'down1', 'down', (s) => throughput(lg, s.via, ports, 'down', 1, 1));
  await interleaved(subjects, 'down8', 'down x8', (s) => throughput(lg, s.via, ports, 'down', 8, 1));
  const lags: number[] = [];
  const raws: number[] = [];
  await interleaved(subjects, 'cycles', 'cycles', async (s) => {
    const metricsPort = s.relay?.metricsPort;
    if (metricsPort) await lagP99(metricsPort); // the scrape resets the histogram
    const v = await cycles(lg, s.via, ports);
    if (metricsPort) {
      const { raw, lag } = await lagP99(metricsPort);
      raws.push(raw);
      lags.push(lag);
    }
    return v;
  });
  const gw = subjects.find((s) => s.relay?.metricsPort);
  if (gw && lags.length > 0) {
    gw.col.values.lag = median(lags);
    console.log(`  socksgate_nodejs_eventloop_lag_p99_seconds as it read after each cycles run (ms): ${raws.map((r) => r.toFixed(1)).join(', ')}`);
  }
  await interleaved(
    subjects.filter((s) => s.udp),
    'udp',
    'UDP',
    (s) => udp(lg, s.relay?.port ?? 0, ports),
  );
  // Last: each hold leaves the machine reclaiming what it took (Dante's children, 3.7 GB of
  // it), and a figure taken in the seconds after measured that: UDP read 0.7–1.2× its
  // value, for Dante and socksgate alike.
  for (const s of subjects) if (s.relay) s.col.values.kib = await attempt(`${s.col.name} KiB/conn`, () => idleKiB(lg, s.relay!, ports));
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
    // Every relay up at once (idle ones cost nothing), each pinned to core 0 in its own process.
    const started: RelayProcess[] = [];
    const subjects: Subject[] = [{ col: { name: 'direct', values: {} }, via: DIRECT, udp: true }];
    // A relay that cannot start (not installed, no port) fails the section: a table without
    // its column would read as a complete comparison.
    const add = async (start: () => Promise<RelayProcess>, name: string, udpToo: boolean): Promise<void> => {
      const relay = await start().catch((err: unknown) => {
        throw new Error(`${name} start: ${err instanceof Error ? err.message : String(err)}`);
      });
      started.push(relay);
      subjects.push({ col: { name, values: {} }, via: { kind: relay.kind, port: relay.port }, relay, udp: udpToo });
    };
    try {
      await add(startMinimalRelayProcess, 'bare Node relay', false);
      // The bare relay doing what the contract obliges of every connection (TCP_NODELAY, the
      // real BND, an access-log line): how much of the gap to it those alone make.
      await add(() => startMinimalRelayProcess(true), 'bare relay + duties', false);
      await add(startDanteProcess, 'Dante', true);
      await add(startMicrosocksProcess, 'microsocks', false);
      await add(() => startGatewayProcess(), 'socksgate', true);
      await measureAll(lg, ports, subjects);
    } finally {
      for (const r of started) await r.stop();
    }
    const columns = subjects.map((s) => s.col);
    printTable(ROWS, columns, 'socksgate', [
      ['bare Node relay', 'bare'],
      ['bare relay + duties', 'bare+duties'],
      ['Dante', 'Dante'],
      ['direct', 'direct'],
    ]);
    if (PROFILE) await profileCycles(lg, ports, PROFILE);
  } finally {
    targets.stop();
  }
}
