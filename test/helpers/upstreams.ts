// Real upstreams from Debian packages (dante-server, microsocks, tinyproxy, squid), each on
// its own loopback address so a destination can tell which hop reached it by the peer address.

import { memberSpec } from '../../src/outbound/pool-member.js';
import { execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, isIPv4, type AddressInfo, type Socket } from 'node:net';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemberSpec, Outbound } from '../../src/outbound/types.js';
import { listenTracked } from './servers.js';
import { requireFile, spawnTiedDaemon } from './spawn.js';

export interface RunningUpstream {
  host: string;
  port: number;
  /** Stops the process; safe to call twice. */
  close(): Promise<void>;
}

/** A free TCP port on `host`: bind port 0, read it, release it. */
export async function freePort(host: string): Promise<number> {
  const srv = createServer();
  srv.listen(0, host);
  await once(srv, 'listening');
  const { port } = srv.address() as AddressInfo;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s: Socket = createConnection({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * The daemon did not get its port: it exited before listening, or another process answers
 * there (a port found free and taken before the daemon bound it).
 */
class PortLost extends Error {}

/** The inodes of the sockets listening on IPv4 `host`:`port`, from /proc/net/tcp (addresses in host byte order). */
async function listeningInodes(host: string, port: number): Promise<Set<string>> {
  const bytes = host.split('.').map((b) => Number(b).toString(16).padStart(2, '0').toUpperCase());
  const want = `${(endianness() === 'LE' ? bytes.reverse() : bytes).join('')}:${port.toString(16).padStart(4, '0').toUpperCase()}`;
  const inodes = new Set<string>();
  for (const line of (await readFile('/proc/net/tcp', 'utf8')).split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === want && f[3] === '0A') inodes.add(f[9]!); // 0A: LISTEN
  }
  return inodes;
}

/** Whether process `pid` holds the socket listening on `host`:`port`, rather than some other process. */
async function holdsListener(pid: number, host: string, port: number): Promise<boolean> {
  if (!isIPv4(host)) return true; // every daemon here listens on an IPv4 loopback address
  const inodes = await listeningInodes(host, port);
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
  for (const fd of fds) {
    const m = /^socket:\[(\d+)\]$/.exec(await readlink(`/proc/${pid}/fd/${fd}`).catch(() => ''));
    if (m && inodes.has(m[1]!)) return true;
  }
  return false;
}

/** Waits until `host:port` accepts, failing early if the process exits. At most ~5 s. */
async function waitForPort(child: ChildProcess, host: string, port: number, what: string, stderr: () => string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new PortLost(`${what} exited (${child.exitCode ?? child.signalCode}): ${stderr()}`);
    }
    if (await canConnect(host, port)) {
      // What answers may be another process that took the port first: the daemon then fails to bind and exits.
      if (await holdsListener(child.pid!, host, port)) return;
      throw new PortLost(`${what}: another process listens on ${host}:${port}`);
    }
    await sleep(50);
  }
  throw new Error(`${what} did not listen on ${host}:${port}: ${stderr()}`);
}

function spawnUpstream(cmd: string, args: string[], host: string, port: number, cleanup?: () => Promise<void>): Promise<RunningUpstream> {
  // Some log to stdout: read it with stderr so a failed start says why, and so no full pipe blocks them.
  const child = spawnTiedDaemon(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (b: Buffer) => {
    if (err.length < 4096) err += b.toString();
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    if (err.length < 4096) err += b.toString();
  });
  child.on('error', (e) => {
    err += String(e);
  });
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    }
    await cleanup?.();
  };
  return waitForPort(child, host, port, cmd, () => err).then(
    () => ({ host, port, close }),
    async (e: unknown) => {
      await close();
      throw e;
    },
  );
}

/**
 * Starts a daemon on `port`, or on a free one. A port found free is released before the daemon
 * binds it, and a test file running alongside may take it in between: the daemon then cannot
 * bind it, and another port is tried, three at most. A given port (a daemon restarted where it
 * was) is not changed: released by the daemon before, it may be held for a moment by a socket
 * of another test file (a port probe, an outgoing connection bound to the same address), so it
 * is tried again for up to 2 s before the start fails.
 */
async function onPort(host: string, port: number | undefined, start: (port: number) => Promise<RunningUpstream>): Promise<RunningUpstream> {
  if (port !== undefined) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await start(port);
      } catch (err) {
        if (!(err instanceof PortLost) || attempt === 20) throw err;
        await sleep(100);
      }
    }
  }
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort(host));
    } catch (err) {
      if (!(err instanceof PortLost) || attempt === 3) throw err;
    }
  }
}

export interface MicrosocksOptions {
  host: string;
  /** Listen on this port (e.g. to restart a member on the same address); a free one when absent. */
  port?: number;
  user?: string;
  pass?: string;
  /** Source address for outgoing connections; defaults to `host` (pass null for the kernel's choice). */
  bind?: string | null;
}

export function startMicrosocks(opts: MicrosocksOptions): Promise<RunningUpstream> {
  return onPort(opts.host, opts.port, (port) => {
    const args = ['-i', opts.host, '-p', String(port)];
    const bind = opts.bind === undefined ? opts.host : opts.bind;
    if (bind !== null) args.push('-b', bind);
    if (opts.user !== undefined) args.push('-u', opts.user, '-P', opts.pass ?? '');
    return spawnUpstream(requireFile('/usr/bin/microsocks', 'microsocks'), args, opts.host, port);
  });
}

export interface DanteOptions {
  host: string;
  port?: number;
  /** Destinations (CIDRs) Dante refuses with its `socks block` rule: the client gets REP 0x02. */
  block?: string[];
  /** Addresses Dante connects out from (its `external:` lines); `host` alone by default. */
  external?: string[];
}

export function startDante(opts: DanteOptions): Promise<RunningUpstream> {
  return onPort(opts.host, opts.port, (port) => spawnDante(opts, port));
}

async function spawnDante(opts: DanteOptions, port: number): Promise<RunningUpstream> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-dante-'));
  const conf = [
    'logoutput: stderr',
    `internal: ${opts.host} port = ${port}`,
    ...(opts.external ?? [opts.host]).map((a) => `external: ${a}`),
    'socksmethod: none',
    'clientmethod: none',
    'user.privileged: root',
    'user.unprivileged: nobody',
    'client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    'client pass { from: ::1/128 to: ::/0 }',
    ...(opts.block ?? []).map((cidr) => `socks block { from: 0.0.0.0/0 to: ${cidr} }`),
    'socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }',
    'socks pass { from: 127.0.0.0/8 to: ::/0 }',
    'socks pass { from: ::1/128 to: ::/0 }',
    '',
  ].join('\n');
  const file = join(dir, 'danted.conf');
  await writeFile(file, conf);
  return spawnUpstream(requireFile('/usr/sbin/danted', 'dante-server'), ['-f', file, '-p', join(dir, 'danted.pid')], opts.host, port, () =>
    rm(dir, { recursive: true, force: true }),
  );
}

export interface TinyproxyOptions {
  host: string;
  port?: number;
  /** Basic auth the proxy demands (RFC 7617); none when absent. */
  user?: string;
  pass?: string;
}

/** tinyproxy in the foreground (`-d`), CONNECT allowed to every port, outgoing from `host`. */
export function startTinyproxy(opts: TinyproxyOptions): Promise<RunningUpstream> {
  return onPort(opts.host, opts.port, (port) => spawnTinyproxy(opts, port));
}

async function spawnTinyproxy(opts: TinyproxyOptions, port: number): Promise<RunningUpstream> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-tinyproxy-'));
  const conf = [
    `Port ${port}`,
    `Listen ${opts.host}`,
    `Bind ${opts.host}`,
    'User nobody',
    'Group nogroup',
    'Timeout 30',
    'MaxClients 50',
    'LogLevel Info',
    'Allow 127.0.0.0/8',
    'DisableViaHeader Yes',
    // No ConnectPort line: CONNECT to any port (the test destinations listen on port 0's pick).
    ...(opts.user !== undefined ? [`BasicAuth ${opts.user} ${opts.pass ?? ''}`] : []),
    '',
  ].join('\n');
  const file = join(dir, 'tinyproxy.conf');
  await writeFile(file, conf);
  return spawnUpstream('/usr/bin/tinyproxy', ['-d', '-c', file], opts.host, port, () => rm(dir, { recursive: true, force: true }));
}

/**
 * Squid without a cache, CONNECT allowed to every port from loopback, outgoing from `host`.
 * `connectTimeout`: squid's own `connect_timeout` (`1 second`), after which it answers 503.
 */
export function startSquid(opts: { host: string; port?: number; connectTimeout?: string }): Promise<RunningUpstream> {
  return onPort(opts.host, opts.port, (port) => spawnSquid(opts, port));
}

async function spawnSquid(opts: { host: string; port?: number; connectTimeout?: string }, port: number): Promise<RunningUpstream> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-squid-'));
  await chmod(dir, 0o777); // squid drops to its own user for its logs
  const conf = [
    `http_port ${opts.host}:${port}`,
    `tcp_outgoing_address ${opts.host}`,
    'visible_hostname socksgate-test',
    'cache deny all',
    'cache_mem 8 MB',
    `pid_filename ${join(dir, 'squid.pid')}`,
    `cache_log ${join(dir, 'cache.log')}`,
    `access_log stdio:${join(dir, 'access.log')}`,
    'logfile_rotate 0',
    'shutdown_lifetime 0 seconds',
    ...(opts.connectTimeout !== undefined ? [`connect_timeout ${opts.connectTimeout}`] : []),
    // Names are never resolved by squid in the tests (IP destinations only); keep it off the machine resolver.
    'dns_nameservers 127.0.0.1',
    'acl local src 127.0.0.0/8',
    'acl CONNECT method CONNECT',
    'http_access allow local',
    'http_access deny all',
    '',
  ].join('\n');
  const file = join(dir, 'squid.conf');
  await writeFile(file, conf);
  return spawnUpstream('/usr/sbin/squid', ['-N', '-f', file], opts.host, port, () => rm(dir, { recursive: true, force: true }));
}

export interface Destination {
  host: string;
  port: number;
  /** Remote addresses of the connections accepted so far, in order. */
  peers: string[];
  close(): Promise<void>;
}

/** A TCP server that writes back "hello <peer address>" and records who connected. */
export async function startDestination(host = '127.0.0.1'): Promise<Destination> {
  const peers: string[] = [];
  const srv = createServer((s) => {
    s.on('error', () => {});
    peers.push(s.remoteAddress ?? '?');
    s.end(`hello ${s.remoteAddress}\n`);
  });
  return { host, peers, ...(await listenTracked(srv, host)) };
}

/**
 * Reads a socket to its end (bounded by the destination closing it). Listens for 'data'
 * rather than iterating: the `socks` client hands over bytes that came with its reply as a
 * bare 'data' event.
 */
export function readAll(s: Socket, timeoutMs = 5_000): Promise<string> {
  const chunks: Buffer[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no end within ${timeoutMs}ms; got ${JSON.stringify(Buffer.concat(chunks).toString('utf8'))}`));
    }, timeoutMs);
    s.on('data', (b: Buffer) => chunks.push(b));
    s.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.resume();
  });
}

export interface SeenRequest {
  atyp: number;
  host: string;
  port: number;
}

export interface ScriptedSocks {
  host: string;
  port: number;
  /** Every CONNECT request received, as sent on the wire. */
  requests: SeenRequest[];
  close(): Promise<void>;
}

/**
 * Test instrument, not an upstream: a minimal no-auth SOCKS5 responder that records each
 * request and answers `rep` (or what `rep(request)` returns) with BND 10.9.8.7:4242 without
 * connecting anywhere (then writes "ok" when rep is 0); with `silent` it accepts and never
 * answers. Use it only for what no real server here can do: show the request bytes exactly
 * as sent, or send a reply code Dante cannot be made to give on loopback. For 0x02 (a
 * `socks block` rule) and 0x05 (a refused port) use startDante.
 */
export async function startScriptedSocks(
  opts: { host?: string; rep?: number | ((req: SeenRequest) => number); silent?: boolean } = {},
): Promise<ScriptedSocks> {
  const host = opts.host ?? '127.0.0.1';
  const requests: SeenRequest[] = [];
  const srv = createServer((s) => {
    s.on('error', () => {});
    if (opts.silent) return;
    let buf = Buffer.alloc(0);
    let greeted = false;
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (!greeted) {
        if (buf.length < 2 || buf.length < 2 + buf[1]!) return;
        buf = buf.subarray(2 + buf[1]!);
        greeted = true;
        s.write(Buffer.from([5, 0]));
      }
      const req = parseRequest(buf);
      if (!req) return;
      requests.push(req);
      const rep = typeof opts.rep === 'function' ? opts.rep(req) : (opts.rep ?? 0);
      s.write(Buffer.from([5, rep, 0, 1, 10, 9, 8, 7, 0x10, 0x92]));
      if (rep === 0) s.end('ok');
      else s.end();
    });
  });
  return { host, requests, ...(await listenTracked(srv, host)) };
}

function parseRequest(b: Buffer): SeenRequest | undefined {
  if (b.length < 5) return undefined;
  const atyp = b[3]!;
  if (atyp === 1 && b.length >= 10) return { atyp, host: [...b.subarray(4, 8)].join('.'), port: b.readUInt16BE(8) };
  if (atyp === 3 && b.length >= 7 + b[4]!) {
    const n = b[4]!;
    return { atyp, host: b.toString('latin1', 5, 5 + n), port: b.readUInt16BE(5 + n) };
  }
  if (atyp === 4 && b.length >= 22) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(b.readUInt16BE(4 + 2 * i).toString(16));
    return { atyp, host: groups.join(':'), port: b.readUInt16BE(20) };
  }
  return undefined;
}

/** Pool members of weight 1 and no tags, for pools built by hand. */
export function specs(outbounds: (Outbound)[]): MemberSpec[] {
  return outbounds.map((outbound) => memberSpec(outbound));
}

export interface TestPki {
  /** PEM file of the throwaway CA. */
  caFile: string;
  key: Buffer;
  cert: Buffer;
}

/** A throwaway CA (openssl) and a server certificate it signs for `names` and `ips`, in `dir`. */
export async function makePki(dir: string, opts: { names: string[]; ips: string[] }): Promise<TestPki> {
  const run = (args: string[]): Promise<void> =>
    new Promise((resolve, reject) => {
      execFile('/usr/bin/openssl', args, { cwd: dir, timeout: 20_000 }, (err, _out, stderr) => (err ? reject(new Error(`openssl ${args[0]}: ${stderr}`)) : resolve()));
    });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=socksgate test CA']);
  await run(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', `/CN=${opts.names[0] ?? 'server'}`]);
  const san = [...opts.names.map((n) => `DNS:${n}`), ...opts.ips.map((ip) => `IP:${ip}`)].join(',');
  await writeFile(join(dir, 'server.ext'), `subjectAltName=${san}\n`);
  await run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '1', '-extfile', 'server.ext']);
  return { caFile: join(dir, 'ca.pem'), key: await readFile(join(dir, 'server.key')), cert: await readFile(join(dir, 'server.pem')) };
}

/** A TLS terminator: accepts TLS on `host` and forwards the plaintext to `to` (an https:// proxy in front of tinyproxy). */
export async function startTlsTerminator(host: string, pki: TestPki, to: { host: string; port: number }): Promise<{ host: string; port: number; close(): Promise<void> }> {
  const srv = createTlsServer({ key: pki.key, cert: pki.cert }, (s) => {
    const up = createConnection(to);
    s.on('error', () => up.destroy());
    up.on('error', () => s.destroy());
    s.pipe(up).pipe(s);
  });
  srv.on('tlsClientError', () => {});
  return { host, ...(await listenTracked(srv, host)) };
}
