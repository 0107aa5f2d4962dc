// Router: compile time, decision time and heap held for 100, 10 000 and 100 000 domain entries
// plus as many CIDRs (list files, as deployments ship them). The per-decision figure should stay
// flat as the lists grow.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { RuleConfig } from '../src/config/types.js';
import type { ResolvedAddress } from '../src/dns/types.js';
import { compileRouter } from '../src/router/compile.js';
import type { RouteRequest, Router } from '../src/router/types.js';
import { routerConfig } from '../test/helpers/config.js';

const SIZES = [100, 10_000, 100_000];
const BATCH = 500;
const BATCHES = 40;
const VARIANTS = 512; // distinct destinations cycled through, so no single hot string

function gcFunction(): (() => void) | undefined {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g;
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return undefined;
  }
}

/** JS heap plus typed-array backing stores (the CIDR tables live there). */
function heldBytes(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Spreads i over the IPv4 space, skipping 100.0.0.0/8 (kept for misses). */
function net4(i: number): string {
  const x = Math.imul(i + 1, 2654435761) >>> 0;
  let a = 1 + (x >>> 24) % 223;
  if (a === 100) a = 101;
  return `${a}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.0/24`;
}

function net6(i: number): string {
  return `2001:db8:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`;
}

export async function writeLists(dir: string, n: number): Promise<void> {
  const domains: string[] = ['# generated'];
  for (let i = 0; i < n; i++) {
    if (i % 100 === 99) domains.push(`keyword:kw${i}x`);
    else if (i % 10 === 9) domains.push(`full:f${i}.example${i % 1000}.com`);
    else domains.push(`d${i}.example${i % 1000}.com`);
  }
  const cidrs: string[] = ['# generated'];
  for (let i = 0; i < n; i++) cidrs.push(i % 4 === 3 ? net6(i) : net4(i));
  await writeFile(join(dir, 'domains.txt'), domains.join('\n'));
  await writeFile(join(dir, 'cidrs.txt'), cidrs.join('\n'));
}

/** Four rules: a port, the domain list, the CIDR list, a user. */
const RULES: RuleConfig[] = [
  { name: 'ssh', ports: [22], action: 'block' },
  { name: 'lists', domains_file: 'domains.txt', action: 'block' },
  { name: 'nets', cidrs_file: 'cidrs.txt', resolve: false, action: 'corp' },
  { name: 'admins', users: ['root'], action: 'corp' },
];

const dns = { lookup: async (): Promise<ResolvedAddress[]> => [] };

function requests(n: number, host: (k: number) => string): RouteRequest[] {
  return Array.from({ length: VARIANTS }, (_, j) => {
    const k = Math.floor((j * n) / VARIANTS);
    return { dest: { host: host(k), port: 443 }, cmd: 'connect', source: '127.0.0.1' };
  });
}

async function medianNs(router: Router, reqs: RouteRequest[], expect: string): Promise<number> {
  const first = await router.decide(reqs[0]!);
  if (first.rule !== expect) throw new Error(`bench setup: ${reqs[0]!.dest.host} → ${first.rule}, wanted ${expect}`);
  for (let i = 0; i < 2_000; i++) await router.decide(reqs[i % reqs.length]!); // warm-up
  const per: number[] = [];
  let j = 0;
  for (let b = 0; b < BATCHES; b++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BATCH; i++) await router.decide(reqs[j++ % reqs.length]!);
    per.push(Number(process.hrtime.bigint() - t0) / BATCH);
  }
  per.sort((a, b) => a - b);
  return per[per.length >> 1]!;
}

export async function run(): Promise<void> {
  const gc = gcFunction();
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-router-'));
  try {
    console.log('router: domains_file + cidrs_file of N entries each (4 rules), median ns per decision');
    console.log('N        compile_ms held_MiB  domain_hit  domain_miss  ip_hit  ip_miss');
    for (const n of [1_000, ...SIZES]) {
      const report = n !== 1_000; // the first pass only warms the JIT up
      await writeLists(dir, n);
      gc?.();
      const heap0 = heldBytes();
      const t0 = process.hrtime.bigint();
      const router = await compileRouter(routerConfig(RULES, dir, 'direct', 'bench'), { dns });
      const compileMs = Number(process.hrtime.bigint() - t0) / 1e6;
      gc?.();
      const heapMb = (heldBytes() - heap0) / 1048576;

      const hitName = (k: number) => (k % 10 === 9 || k % 100 === 99 ? `www.d${k - 1}.example${(k - 1) % 1000}.com` : `www.d${k}.example${k % 1000}.com`);
      const domainHit = await medianNs(router, requests(n, hitName), 'lists');
      const domainMiss = await medianNs(router, requests(n, (k) => `www.nope${k}.example${k % 1000}.com`), 'default');
      const ipHit = await medianNs(router, requests(n, (k) => net4(k % 4 === 3 ? k - 1 : k).replace('.0/24', '.77')), 'nets');
      const ipMiss = await medianNs(router, requests(n, (k) => `100.${k & 255}.${(k >> 8) & 255}.1`), 'default');
      if (!report) continue;
      console.log(
        `${String(n).padEnd(8)} ${compileMs.toFixed(1).padStart(10)}  ${heapMb.toFixed(1).padStart(7)}  ` +
          `${domainHit.toFixed(0).padStart(10)}  ${domainMiss.toFixed(0).padStart(11)}  ${ipHit.toFixed(0).padStart(6)}  ${ipMiss.toFixed(0).padStart(7)}`,
      );
    }
    if (!gc) console.log('(no gc available: heap figures are raw heapUsed+arrayBuffers deltas)');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await run();
