// `npm run bench [name ...]`: prints the machine, then runs every benchmark file (or the
// named ones) in turn. `npm run bench:soak` (or BENCH_SOAK=1) adds the soak.
import { execFileSync } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { dirname } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
const HELPERS = ['run.ts', 'lib.ts', 'processes.ts', 'loadgen.ts', 'report.ts', 'profile.ts', 'minimal-relay-main.ts', 'proxy-chain-main.ts'];
const wanted = process.argv.slice(2);
const soak = process.env.BENCH_SOAK === '1';

function version(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0]!.trim();
  } catch {
    return 'not installed';
  }
}

const cpu = cpus();
console.log(`machine: ${cpu[0]?.model ?? '?'}, ${cpu.length} cores, ${(totalmem() / 1024 ** 3).toFixed(0)} GiB, Linux ${release()}, Node ${process.version}`);
console.log(`peers: ${version('dpkg-query', ['-W', '-f=dante-server ${Version}', 'dante-server'])}, ${version('dpkg-query', ['-W', '-f=microsocks ${Version}', 'microsocks'])}, ${version('cc', ['--version'])}`);

const files = (await readdir(here)).filter((f) => f.endsWith('.ts') && !HELPERS.includes(f)).sort();
for (const file of files) {
  const name = file.replace(/\.ts$/, '');
  if (wanted.length > 0 ? !wanted.includes(name) : name === 'soak' && !soak) continue;
  const mod = (await import(`./${file}`)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') continue;
  console.log(`\n## ${name}`);
  // One section failing (a timeout on a busy machine) must not cost the others' figures.
  await mod.run().catch((err: unknown) => {
    console.log(`${name}: FAILED: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  });
}
