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
  samples: number[];
  timeDeltas: number[];
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

export async function printProfile(dir: string, top = 25): Promise<void> {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) throw new Error(`no .cpuprofile in ${dir}`);
  const dated = await Promise.all(files.map(async (f) => ({ f, t: (await stat(join(dir, f))).mtimeMs })));
  const newest = dated.sort((a, b) => b.t - a.t)[0]!.f;
  const p = JSON.parse(await readFile(join(dir, newest), 'utf8')) as CpuProfile;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  p.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  let total = 0;
  let idle = 0;
  const fns = new Map<string, number>();
  const origins = new Map<string, number>();
  for (const [id, us] of self) {
    const cf = byId.get(id)!.callFrame;
    total += us;
    if (cf.functionName === '(idle)') {
      idle += us;
      continue;
    }
    const where = origin(cf.url);
    const key = `${cf.functionName || '(anonymous)'}  ${where}${cf.url ? `:${cf.lineNumber + 1}` : ''}`;
    fns.set(key, (fns.get(key) ?? 0) + us);
    origins.set(where, (origins.get(where) ?? 0) + us);
  }
  const busy = total - idle;
  const pct = (us: number): string => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  console.log(`cpu profile ${join(dir, newest)}: ${(busy / 1e6).toFixed(2)} s busy of ${(total / 1e6).toFixed(2)} s; shares of busy time`);
  console.log('  self time by function:');
  for (const [k, us] of [...fns].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`  ${pct(us)}  ${k}`);
  console.log('  self time by source:');
  for (const [k, us] of [...origins].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${pct(us)}  ${k}`);
}

if (process.argv[1]?.endsWith('profile.ts') && process.argv[2]) await printProfile(process.argv[2]);
