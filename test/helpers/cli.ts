import type { ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { requireFile, spawnTied } from './spawn.js';
import { tempDir } from './temp-dir.js';

export const CLI = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));

/** `text` written to a fresh temporary directory as `name`: the path to give --config. */
export async function configFile(text: string, name = 'socksgate.yaml'): Promise<string> {
  const path = join(await tempDir('cli'), name);
  await writeFile(path, text);
  return path;
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `socksgate ARGS` to completion (bounded by timeoutMs); the process dies with this one. */
export function runCli(args: readonly string[], opts: { input?: string | Buffer; env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawnTied(process.execPath, ['--import', 'tsx', CLI, ...args], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    // Node + tsx start-up is ~1.5 s of CPU: on a loaded 2-core runner that has taken over 20 s
    // of wall time. The bound is for a hung process, not for speed.
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin!.end(opts.input ?? '');
  });
}

export interface RunningGateway {
  child: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
  /** Waits for a log line matching `pred` (bounded). */
  waitFor(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
}

/**
 * Starts `socksgate --config FILE` as a real process; resolves once it listens (within `readyMs`).
 * It dies with this process (see spawn.ts), so a cancelled test file leaves no gateway behind.
 * `preload`: modules node loads first (`--import`), such as a test's fault injector.
 * `group`: the gateway leads a process group of its own, as a shell's job does, so that a
 * signal can go to the whole group (`process.kill(-pid)`: a terminal's Ctrl-C, systemd's stop).
 * `nofile`: the process's limit of open file descriptors (prlimit(1), which execs it in place).
 * `env`: variables set for it on top of this process's own.
 */
export async function startCliGateway(
  configPath: string,
  extra: readonly string[] = [],
  preload: readonly string[] = [],
  readyMs = 60_000, // start-up under load: see runCli
  opts: { group?: boolean; nofile?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningGateway> {
  const imports = ['tsx', ...preload].flatMap((m) => ['--import', m]);
  const node = [process.execPath, ...imports, CLI, '--config', configPath, ...extra];
  const [cmd, ...args] = opts.nofile === undefined ? node : [requireFile('/usr/bin/prlimit', 'util-linux'), `--nofile=${opts.nofile}:${opts.nofile}`, ...node];
  const env = opts.env === undefined ? process.env : { ...process.env, ...opts.env };
  const child = spawnTied(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: opts.group ?? false, env });
  const lines = logLines(child.stdout!);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const waitFor = async (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> => {
    for (let waited = 0; waited <= timeoutMs; waited += 25) {
      const hit = lines.find(pred);
      if (hit) return hit;
      if (child.exitCode !== null || child.signalCode !== null) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`no matching log line; stderr: ${stderr}; lines: ${JSON.stringify(lines)}`);
  };
  // A gateway that never came up is killed here: the caller has no handle to tear down.
  const ready = await waitFor((l) => l.msg === 'socksgate listening', readyMs).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  });
  const listen = ready.listen as string[];
  const port = Number(listen[0]!.split(':').pop());
  return { child, port, lines, waitFor, exited };
}

/** The JSON log lines read from `out` so far, kept up to date as more arrive ({raw} for a line that is not JSON). */
export function logLines(out: Readable): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  let buf = '';
  out.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        lines.push({ raw: line });
      }
    }
  });
  return lines;
}
