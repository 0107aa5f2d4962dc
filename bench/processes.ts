// Relays under test run in processes of their own, as deployed, pinned to core 0 with
// the file-descriptor limit raised to the hard limit (a relay holds two sockets per
// connection: with this machine's 20 000, about 9 900 relayed connections). The load
// generator (bench/loadgen.ts) runs on core 1. Node relays run compiled (tsc), as shipped:
// socksgate from dist/ (`npm start`), the bare relay and proxy-chain's entry from bench/.build.
// Not through tsx, whose transform names every function at run time (esbuild keepNames) and
// makes per-connection closures measurably slower than the shipped code.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const SERVER_CORE = '0';
export const CLIENT_CORE = '1';
/** The hard limit on open files (raising it needs a privilege the bench does not assume). */
export const NOFILE = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()) || 1024;

/** How a client asks the relay for a connection (the load generator's PROXY argument). */
export type ProxyKind = 'socks5' | 'socks5-lockstep' | 'http';

export interface RelayProcess {
  name: string;
  port: number;
  pid: number;
  kind: ProxyKind;
  /** The admin listener (socksgate only). */
  metricsPort?: number;
  stop(): Promise<void>;
}

let built = false;

/** Compiles socksgate (dist/) and the bench's Node entries (bench/.build/) once per run. */
export function buildOnce(): void {
  if (built) return;
  const tsc = join(ROOT, 'node_modules', '.bin', 'tsc');
  execFileSync(tsc, ['-p', 'tsconfig.json'], { cwd: ROOT, stdio: 'inherit' });
  execFileSync(tsc, ['-p', 'bench/tsconfig.build.json'], { cwd: ROOT, stdio: 'inherit' });
  built = true;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Every process the bench started and has not seen exit. */
const live = new Set<ChildProcess>();
let watching = false;

/**
 * A bench that dies on an exception or is told to stop must not leave relays (danted,
 * microsocks, gateways) or load generators running: each is signalled by its pid on the way
 * out. SIGTERM, not SIGKILL: danted stops its own children on SIGTERM. Installed with the
 * first process, so that importing this module changes nothing.
 */
function stopAllOnExit(): void {
  if (watching) return;
  watching = true;
  process.once('exit', () => {
    for (const child of live) child.kill('SIGTERM');
  });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1)));
  }
}

/** `cmd args` on `core` with the raised descriptor limit; prlimit and taskset exec, so the pid is the command's. */
export function spawnPinned(core: string, cmd: string, args: string[], opts: { stdout?: 'ignore' | 'pipe'; cwd?: string } = {}): ChildProcess {
  const child = spawn('prlimit', [`--nofile=${NOFILE}:${NOFILE}`, 'taskset', '-c', core, cmd, ...args], {
    cwd: opts.cwd ?? ROOT,
    stdio: ['ignore', opts.stdout ?? 'ignore', 'pipe'],
  });
  stopAllOnExit();
  live.add(child);
  child.once('exit', () => live.delete(child));
  // A spawn failure (prlimit or taskset missing) arrives as 'error', then 'exit' or 'close';
  // unheard, it would end the bench at once with everything else still running.
  child.once('error', (err) => {
    live.delete(child);
    console.log(`  ${cmd}: ${err.message}`);
  });
  return child;
}

/** Resolves once something accepts on the port (bounded: 600 tries, 50 ms apart: tsx start-up on a busy machine). */
async function accepting(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (child.exitCode !== null) throw new Error(`relay process exited with ${child.exitCode}: ${stderr()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepts on ${port}: ${stderr()}`);
}

async function start(
  name: string,
  kind: ProxyKind,
  cmd: string,
  args: string[],
  port: number,
  cleanup?: () => Promise<void>,
  core = SERVER_CORE,
): Promise<RelayProcess> {
  const child = spawnPinned(core, cmd, args);
  let err = '';
  child.stderr!.on('data', (b: Buffer) => {
    if (err.length < 8192) err += b.toString();
  });
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    await cleanup?.();
  };
  try {
    await accepting(port, child, () => err);
  } catch (e) {
    await stop();
    throw e;
  }
  return { name, kind, port, pid: child.pid!, stop };
}

export interface GatewayOptions {
  /** YAML appended to listen, limits and metrics (must not set those). */
  yaml?: string;
  /** Node flags before the script (e.g. --cpu-prof). */
  nodeFlags?: string[];
  /** taskset's CPU list; core 0 unless told ("0,1": unpinned on this machine). */
  cores?: string;
}

/** The bench's socksgate: a 2-rule config, access log at info (to /dev/null), metrics listener on. */
export const TWO_RULES = `rules:
  - { name: no-metadata, cidrs: [169.254.169.254/32], action: block }
  - { name: loopback, cidrs: [127.0.0.0/8, "::1/128"], action: direct }
`;

/** socksgate from its CLI, one process (workers: 1) unless `yaml` says otherwise. */
export async function startGatewayProcess(opts: GatewayOptions = {}): Promise<RelayProcess> {
  const [port, metricsPort] = [await freePort(), await freePort()];
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-'));
  const file = join(dir, 'socksgate.yaml');
  const yaml = opts.yaml ?? TWO_RULES;
  await writeFile(
    file,
    `listen: [{ host: 127.0.0.1, port: ${port} }]\nlimits: { drain_timeout: 0s }\nmetrics: { host: 127.0.0.1, port: ${metricsPort} }\nlog: { level: info }\n${yaml}`,
  );
  buildOnce();
  const args = [...(opts.nodeFlags ?? []), 'dist/cli.js', '--config', file];
  const relay = await start('socksgate', 'socks5', process.execPath, args, port, () => rm(dir, { recursive: true, force: true }), opts.cores);
  return { ...relay, metricsPort };
}

/** The minimal relay of bench/lib.ts (`a.pipe(b)`) alone in a process; `duties`: with the contract's per-connection duties. */
export async function startMinimalRelayProcess(duties = false): Promise<RelayProcess> {
  const port = await freePort();
  buildOnce();
  const args = ['bench/.build/bench/minimal-relay-main.js', String(port), ...(duties ? ['duties'] : [])];
  return start(duties ? 'bare relay + duties' : 'bare Node relay', 'socks5', process.execPath, args, port);
}

/** The minimal HTTP CONNECT relay of bench/lib.ts (node's HTTP server, a dial, pipe), alone in a process. */
export async function startMinimalConnectRelayProcess(): Promise<RelayProcess> {
  const port = await freePort();
  buildOnce();
  return start('bare HTTP CONNECT relay', 'http', process.execPath, ['bench/.build/bench/minimal-relay-main.js', String(port), 'http'], port);
}

/** The relay on libuv's handles (bench/handle-relay-main.ts): the floor below net.Socket, for cycles only. */
export async function startHandleRelayProcess(): Promise<RelayProcess> {
  const port = await freePort();
  buildOnce();
  return start('relay on libuv handles', 'socks5', process.execPath, ['bench/.build/bench/handle-relay-main.js', String(port)], port);
}

/** apify's proxy-chain, the Node HTTP proxy to compare the HTTP front with. */
export async function startProxyChainProcess(): Promise<RelayProcess> {
  const port = await freePort();
  buildOnce();
  return start('proxy-chain', 'http', process.execPath, ['bench/.build/bench/proxy-chain-main.js', String(port)], port);
}

/** The comparison needs every peer: a missing one fails the run rather than dropping its column. */
function required(path: string, pkg: string): void {
  if (!existsSync(path)) throw new Error(`${path} not found: install the Debian package ${pkg}`);
}

export async function startMicrosocksProcess(): Promise<RelayProcess> {
  required('/usr/bin/microsocks', 'microsocks');
  const port = await freePort();
  return start('microsocks', 'socks5-lockstep', '/usr/bin/microsocks', ['-i', '127.0.0.1', '-p', String(port)], port);
}

export async function startDanteProcess(): Promise<RelayProcess> {
  required('/usr/sbin/danted', 'dante-server');
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-bench-dante-'));
  const conf = [
    'logoutput: /dev/null',
    `internal: 127.0.0.1 port = ${port}`,
    'external: 127.0.0.1',
    'socksmethod: none',
    'clientmethod: none',
    'user.privileged: root',
    'user.unprivileged: nobody',
    'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    'socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    '',
  ].join('\n');
  await writeFile(join(dir, 'danted.conf'), conf);
  const args = ['-f', join(dir, 'danted.conf'), '-p', join(dir, 'danted.pid')];
  return start('Dante', 'socks5', '/usr/sbin/danted', args, port, () => rm(dir, { recursive: true, force: true }));
}

/** Resident set of `pid` and every descendant (Dante forks its workers), in KiB. */
export async function treeRssKiB(pid: number): Promise<number> {
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (after.length > 1) parents.set(Number(entry), Number(after[1]));
  }
  const tree = new Set([pid]);
  for (let grew = true; grew; ) {
    grew = false;
    for (const [child, parent] of parents) if (tree.has(parent) && !tree.has(child)) tree.add(child), (grew = true);
  }
  let kib = 0;
  for (const p of tree) {
    const status = await readFile(`/proc/${p}/status`, 'utf8').catch(() => '');
    kib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  }
  return kib;
}
