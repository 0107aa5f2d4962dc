// Reads a V8 .cpuprofile (node --cpu-prof) and prints where the time went: self time
// per function, and totals per source (socksgate's files, its dependencies, Node).
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Only samples taken in [from, to] (µs of the monotonic clock, process.hrtime.bigint() / 1000). */
export interface Window {
  from?: number;
  to?: number;
}

/** Where a function lives, shortened: src/server/relay.ts, pino, node:net, (native). */
function origin(url: string): string {
  if (!url) return '(native / V8)';
  const src = /\/(src\/[^?]+)/.exec(url);
  if (src && !url.includes('node_modules')) return src[1]!;
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (dep) return dep[1]!;
  return url.replace(/^node:/, 'node:');
}

async function newestProfile(dir: string): Promise<string> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const dated = await Promise.all(files.map(async (f) => ({ f, t: (await stat(join(dir, f))).mtimeMs })));
  return join(dir, dated.sort((a, b) => b.t - a.t)[0]!.f);
}

function top(title: string, m: Map<string, number>, n: number, pct: (us: number) => string): void {
  console.log(`  ${title}:`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) console.log(`  ${pct(us)}  ${k}`);
}

const add = (m: Map<string, number>, k: string, us: number): void => void m.set(k, (m.get(k) ?? 0) + us);

/**
 * Self time per function and per source, and inclusive time per source (a source counts
 * once per sample however deep it is in the stack): what socksgate's own files, each
 * dependency and each Node module cost, callees included.
 */
export async function printProfile(dir: string, window: Window = {}, n = 25): Promise<void> {
  const file = await newestProfile(dir);
  const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((x) => [x.id, x]));
  const parent = new Map<number, number>();
  for (const x of p.nodes) for (const c of x.children ?? []) parent.set(c, x.id);
  const self = new Map<string, number>();
  const selfOrigin = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let busy = 0;
  let idle = 0;
  let t = p.startTime;
  p.samples.forEach((id, i) => {
    const us = p.timeDeltas[i] ?? 0;
    t += us;
    if ((window.from !== undefined && t < window.from) || (window.to !== undefined && t > window.to)) return;
    const cf = byId.get(id)!.callFrame;
    if (cf.functionName === '(idle)') return void (idle += us);
    busy += us;
    const where = origin(cf.url);
    add(self, `${cf.functionName || '(anonymous)'}  ${where}${cf.url && !where.startsWith('src/') ? `:${cf.lineNumber + 1}` : ''}`, us);
    add(selfOrigin, where, us);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const o = origin(byId.get(at)!.callFrame.url);
      if (o !== '(native / V8)' && !seen.has(o)) seen.add(o), add(inclusive, o, us);
    }
  });
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  console.log(`cpu profile ${file}: ${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle in the window; shares of busy time`);
  top('self time by function', self, n, pct);
  top('self time by source', selfOrigin, 15, pct);
  top('inclusive time by source (callees included)', inclusive, 25, pct);
}

if (process.argv[1]?.endsWith('profile.ts') && process.argv[2]) await printProfile(process.argv[2]);
