// `npm run fuzz [TARGET...]`: every target in fuzz/targets for FUZZ_SECONDS seconds each
// (default 30), coverage-guided by jazzer.js (libFuzzer). Inputs that grow coverage are kept
// in fuzz/.build/corpus (not committed); seeds are fuzz/seeds/TARGET; an input that breaks a
// target's property is written to fuzz/regressions/TARGET, which test/fuzz replays in `npm test`.
// Exits 1 when any target found something.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fuzzerEnv } from './compat.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(HERE);
const SECONDS = Number(process.env['FUZZ_SECONDS'] ?? 30);
/** One input running longer than this is a hang (libFuzzer -timeout, seconds). */
const HANG_SECONDS = 10;

interface Outcome {
  target: string;
  runs: number;
  seconds: number;
  coverage: number;
  finding: string | undefined;
}

function targets(): string[] {
  const all = readdirSync(join(HERE, 'targets'))
    .filter((f) => f.endsWith('.fuzz.ts'))
    .map((f) => f.slice(0, -'.fuzz.ts'.length))
    .sort();
  const wanted = process.argv.slice(2);
  for (const w of wanted) if (!all.includes(w)) throw new Error(`no fuzz target "${w}" (have: ${all.join(', ')})`);
  return wanted.length > 0 ? wanted : all;
}

function fuzzOne(target: string, env: NodeJS.ProcessEnv): Promise<Outcome> {
  const cli = join(dirname(createRequire(import.meta.url).resolve('@jazzer.js/core/package.json')), 'dist', 'cli.js');
  const corpus = join(HERE, '.build', 'corpus', target);
  const regressions = join(HERE, 'regressions', target);
  mkdirSync(corpus, { recursive: true });
  mkdirSync(regressions, { recursive: true });
  const dirs = [corpus, join(HERE, 'seeds', target)].filter((d) => existsSync(d)).map((d) => relative(ROOT, d));
  const dict = join(HERE, `${target}.dict`);
  const libfuzzer = [`-max_total_time=${SECONDS}`, `-timeout=${HANG_SECONDS}`, `-artifact_prefix=${relative(ROOT, regressions)}/`, '-print_final_stats=1'];
  if (existsSync(dict)) libfuzzer.push(`-dict=${relative(ROOT, dict)}`);
  // tsx compiles the targets and the sources; jazzer.js's ESM loader hook instruments them (src/ only).
  const args = ['--import', 'tsx', cli, `fuzz/targets/${target}.fuzz`, ...dirs, '-i', 'src/', '--sync', '--', ...libfuzzer];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env: { ...env, NODE_NO_WARNINGS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const keep = (c: Buffer): void => {
      log += c.toString('utf8');
      if (log.length > 1_000_000) log = log.slice(-200_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    // libFuzzer stops itself at max_total_time; this only guards against a stuck process.
    const guard = setTimeout(() => child.kill('SIGKILL'), (SECONDS + HANG_SECONDS + 60) * 1000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      // libFuzzer's last lines (its recommended dictionary, then "Done N runs") can be cut off when it
      // exits; its "#N DONE" status line comes before them.
      const runs = Number(/Done (\d+) runs in (\d+) second/.exec(log)?.[1] ?? /stat::number_of_executed_units: (\d+)/.exec(log)?.[1] ?? /#(\d+)\s+DONE /.exec(log)?.[1] ?? 0);
      const seconds = Number(/Done \d+ runs in (\d+) second/.exec(log)?.[1] ?? SECONDS);
      const coverage = Math.max(0, ...[...log.matchAll(/cov: (\d+)/g)].map((m) => Number(m[1])));
      const written = /Test unit written to (\S+)/.exec(log)?.[1];
      const problem = /==\d+== (.*)/.exec(log)?.[1];
      const finding = code === 0 && runs > 0 ? undefined : `${problem ?? `exit ${code}`}${written ? ` (input: ${written})` : ''}\n${log.slice(-4000)}`;
      resolve({ target, runs, seconds, coverage, finding });
    });
  });
}

const env = fuzzerEnv();
const outcomes: Outcome[] = [];
for (const target of targets()) {
  const o = await fuzzOne(target, env);
  outcomes.push(o);
  process.stdout.write(`fuzz ${target}: ${o.runs} runs in ${o.seconds}s, coverage ${o.coverage} edges${o.finding ? ', FINDING' : ''}\n`);
  if (o.finding) process.stdout.write(`${o.finding}\n`);
}
const total = outcomes.reduce((n, o) => n + o.runs, 0);
const found = outcomes.filter((o) => o.finding);
process.stdout.write(`fuzz: ${total} runs over ${outcomes.length} targets; ${found.length === 0 ? 'no findings' : `findings in ${found.map((o) => o.target).join(', ')}`}\n`);
process.exitCode = found.length === 0 ? 0 : 1;
