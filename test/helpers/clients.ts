// Real proxy clients from Debian packages, run as child processes: Python (requests, Scrapy,
// PySocks) and Chromium. Each runs with a bounded time and is killed by its own process
// group id when it overruns or when the test ends; none sees a proxy from the environment.

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createHttpServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenTracked } from './servers.js';

/** Debian's interpreter: the one with python3-requests, python3-scrapy and python3-socks. */
export const SYSTEM_PYTHON = '/usr/bin/python3';
export const CHROMIUM = '/usr/bin/chromium';
/** No sandbox (containers), and nothing that would reach beyond loopback on its own. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-default-apps',
  '--disable-domain-reliability',
  '--no-pings',
] as const;

export interface ProcessResult {
  /** Exit code; null when killed. */
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
}

/** A clean environment: no *_proxy variables, no user site packages, a throwaway HOME. */
export function cleanEnv(home: string, extra: Record<string, string> = {}): Record<string, string> {
  return { PATH: '/usr/bin:/bin', HOME: home, LANG: 'C.UTF-8', PYTHONNOUSERSITE: '1', PYTHONDONTWRITEBYTECODE: '1', ...extra };
}

const MAX_OUTPUT = 1 << 20;

const urlHost = (host: string): string => (host.includes(':') ? `[${host}]` : host);

/**
 * Runs `cmd` in its own process group and resolves when it exits; never rejects (the result
 * tells). Past `timeoutMs` the whole group (the process and any children it forked, as
 * Chromium does) is killed by its id.
 */
export function runProcess(cmd: string, args: readonly string[], opts: { timeoutMs: number; env: Record<string, string>; cwd?: string }): Promise<ProcessResult> {
  const child = spawn(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (b: Buffer) => {
    if (stdout.length < MAX_OUTPUT) stdout += b.toString();
  });
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < MAX_OUTPUT) stderr += b.toString();
  });
  let timedOut = false;
  const killGroup = (): void => {
    if (child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, opts.timeoutMs);
  return new Promise((resolve) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      resolve({ code: null, signal: null, timedOut, stdout, stderr: `${stderr}${String(err)}` });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      killGroup(); // helpers the client left behind (Chromium's zygote) go with it
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

/** Runs a Python program given as text with Debian's interpreter; argv after it. */
export function runPython(program: string, args: readonly string[], opts: { timeoutMs: number; home: string; cwd?: string }): Promise<ProcessResult> {
  return runProcess(SYSTEM_PYTHON, ['-c', program, ...args], { timeoutMs: opts.timeoutMs, env: cleanEnv(opts.home), cwd: opts.cwd });
}

/** A fresh temporary directory, removed by the returned function. */
export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `socksgate-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface SelfSignedCert {
  key: string;
  cert: string;
  /** The certificate as a PEM file, usable as a CA bundle (it is its own issuer). */
  certFile: string;
}

/** A throwaway self-signed certificate for 127.0.0.1, ::1 and localhost, made by openssl in `dir`. */
export async function selfSignedCert(dir: string): Promise<SelfSignedCert> {
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  const r = await runProcess(
    '/usr/bin/openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost',
      '-keyout', keyFile, '-out', certFile,
    ],
    { timeoutMs: 20_000, env: cleanEnv(dir) },
  );
  if (r.code !== 0) throw new Error(`openssl failed (${r.code ?? r.signal}): ${r.stderr}`);
  return { key: await readFile(keyFile, 'utf8'), cert: await readFile(certFile, 'utf8'), certFile };
}

export interface SeenHttpRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  peer: string;
}

export interface RecordingHttpsServer {
  port: number;
  url: string;
  caFile: string;
  /** Every request it answered, in order. */
  seen: SeenHttpRequest[];
  close(): Promise<void>;
}

/** An HTTPS origin on `host` with a certificate made now; answers `handler` (default: "secure PATH"). */
export async function startHttpsServer(
  dir: string,
  handler: (req: IncomingMessage, res: ServerResponse) => void = (req, res) => res.end(`secure ${req.url ?? ''}\n`),
  host = '127.0.0.1',
): Promise<RecordingHttpsServer> {
  const { key, cert, certFile } = await selfSignedCert(dir);
  const seen: SeenHttpRequest[] = [];
  const server = createHttpsServer({ key, cert }, (req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, peer: req.socket.remoteAddress ?? '' });
    handler(req, res);
  });
  server.on('tlsClientError', () => {});
  const { port, close } = await listenTracked(server, host);
  return { port, url: `https://${urlHost(host)}:${port}`, caFile: certFile, seen, close };
}

export interface RecordingHttpServer {
  port: number;
  url: string;
  /** Every request it answered, in order. */
  seen: SeenHttpRequest[];
  close(): Promise<void>;
}

/** A plain HTTP origin on `host` that records each request (headers included) before `handler` answers it. */
export async function startRecordingHttpServer(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  host = '127.0.0.1',
): Promise<RecordingHttpServer> {
  const seen: SeenHttpRequest[] = [];
  const server = createHttpServer((req, res) => {
    seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, peer: req.socket.remoteAddress ?? '' });
    handler(req, res);
  });
  const { port, close } = await listenTracked(server, host);
  return { port, url: `http://${urlHost(host)}:${port}`, seen, close };
}
