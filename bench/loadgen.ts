// The C load generator (bench/loadgen.c): compiled here with the system cc, run on core 1.
import { execFile, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CLIENT_CORE, spawnPinned, type ProxyKind } from './processes.js';

const SOURCE = fileURLToPath(new URL('./loadgen.c', import.meta.url));

export interface TargetPorts {
  sink: number;
  source: number;
  echo: number;
  /** Echoes the 64 bytes of a cycle, then closes first (see loadgen-serve.h). */
  echo_close: number;
  http: number;
  udp: number;
}

export type Figures = Record<string, number>;

const TARGETS: Array<keyof TargetPorts> = ['sink', 'source', 'echo', 'echo_close', 'http', 'udp'];

/**
 * One line of the load generator's output: a JSON object of numbers. Throws on anything
 * else, so that a garbled line fails its run (inside an event handler, JSON.parse's own
 * throw would end the whole bench) and no NaN or string reaches a figure.
 */
export function parseFigures(line: string): Figures {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`loadgen printed ${JSON.stringify(line.slice(0, 200))}, not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`loadgen printed ${JSON.stringify(line.slice(0, 200))}, not an object`);
  const figures: Figures = {};
  for (const [k, v] of Object.entries(value)) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`loadgen printed ${k}=${JSON.stringify(v)}, not a number`);
    figures[k] = v;
  }
  return figures;
}

/** The proxy argument of a run: straight to the target, or through a relay. */
export interface Via {
  kind: ProxyKind | 'none';
  port: number;
}
export const DIRECT: Via = { kind: 'none', port: 0 };

export async function buildLoadgen(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-loadgen-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true })); // the build goes with the run
  const bin = join(dir, 'loadgen');
  await promisify(execFile)('cc', ['-O2', '-Wall', '-o', bin, SOURCE, '-lpthread']);
  return bin;
}

function lines(child: ChildProcess, onLine: (l: string) => void): void {
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      onLine(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
}

function stderrOf(child: ChildProcess): () => string {
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  return () => err.trim();
}

export class Loadgen {
  readonly bin: string;
  constructor(bin: string) {
    this.bin = bin;
  }

  /** The target servers, on core 1 beside the clients; they end with this process. */
  async serve(): Promise<{ ports: TargetPorts; stop(): void }> {
    const child = spawnPinned(CLIENT_CORE, this.bin, ['serve'], { stdout: 'pipe' });
    const err = stderrOf(child);
    const ports = await new Promise<TargetPorts>((resolve, reject) => {
      lines(child, (l) => {
        try {
          const f = parseFigures(l);
          const missing = TARGETS.filter((k) => f[k] === undefined);
          if (missing.length > 0) throw new Error(`loadgen serve printed no port for ${missing.join(', ')}`);
          resolve({ sink: f.sink!, source: f.source!, echo: f.echo!, echo_close: f.echo_close!, http: f.http!, udp: f.udp! });
        } catch (err) {
          child.kill('SIGKILL');
          reject(err as Error);
        }
      });
      child.on('exit', (code) => reject(new Error(`loadgen serve exited ${code}: ${err()}`)));
    });
    return { ports, stop: () => child.kill('SIGKILL') };
  }

  /** One run to completion; its JSON figures. Rejects on failure or after `deadlineMs`. */
  run(args: Array<string | number>, deadlineMs: number): Promise<Figures> {
    const child = spawnPinned(CLIENT_CORE, this.bin, args.map(String), { stdout: 'pipe' });
    const err = stderrOf(child);
    let last = '';
    lines(child, (l) => (last = l));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), deadlineMs);
      child.on('exit', (code, signal) => {
        clearTimeout(timer);
        if (code === 0 && last) {
          try {
            resolve(parseFigures(last));
          } catch (e) {
            reject(e as Error);
          }
        } else reject(new Error(`loadgen ${args.join(' ')}: ${signal ?? code} ${err()}`));
      });
    });
  }

  /**
   * `n` relayed connections, each having echoed 64 bytes, held open. release() has each
   * echo again (compared byte for byte) and close; it resolves with that run's figures.
   */
  async hold(via: Via, echoPort: number, n: number): Promise<{ held: Figures; release(): Promise<Figures>; stop(): void }> {
    const child = spawnPinned(CLIENT_CORE, this.bin, ['hold', via.kind, via.port, echoPort, n].map(String), { stdout: 'pipe' });
    const err = stderrOf(child);
    const results: Figures[] = [];
    const waiters: Array<() => void> = [];
    let garbled: Error | undefined;
    lines(child, (l) => {
      try {
        results.push(parseFigures(l));
      } catch (err) {
        garbled = err as Error;
        child.kill('SIGKILL'); // its exit rejects the waiting step with `garbled`
        return;
      }
      waiters.shift()?.();
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const next = (ms: number): Promise<Figures> =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`loadgen hold: no result within ${ms} ms`)), ms);
        const done = (): void => {
          clearTimeout(timer);
          resolve(results.shift()!);
        };
        if (results.length > 0) done();
        else waiters.push(done);
        void exited.then((code) => {
          clearTimeout(timer);
          if (results.length === 0) reject(garbled ?? new Error(`loadgen hold exited ${code}: ${err()}`));
        });
      });
    const held = await next(150_000).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
    return {
      held,
      release: async () => {
        child.kill('SIGUSR1');
        return next(150_000).finally(() => child.kill('SIGKILL'));
      },
      // Waiting for SIGUSR1 has no deadline: a run that fails before release() must end it.
      stop: () => void child.kill('SIGKILL'),
    };
  }
}
