// Shared test fixtures: real servers on loopback, port 0, closed by the caller.
import { createServer as createHttpServer } from 'node:http';
import { createServer, connect, isIPv4, isIPv6, type Server, type Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { SocksClient } from 'socks';
import { stringify } from 'yaml';
import { pino, type Logger } from 'pino';
import { parseConfig } from '../../src/config/load.js';
import { Gateway } from '../../src/gateway.js';
import { listenTracked } from './servers.js';

export interface TestServer {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** Echoes every byte back; honours half-close (ends its side after the client's FIN). */
export async function startEchoServer(host = '127.0.0.1'): Promise<TestServer & { peers: string[] }> {
  const peers: string[] = [];
  const server = createServer({ allowHalfOpen: true }, (s) => {
    peers.push(s.remoteAddress ?? '');
    s.on('error', () => {});
    s.pipe(s);
  });
  return { host, peers, ...(await listenTracked(server, host)) };
}

/** Answers every GET with "hello from HOST:PORT, you are PEER". */
export async function startHttpServer(host = '127.0.0.1'): Promise<TestServer & { url: string }> {
  const server = createHttpServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello ${req.url ?? ''} from ${req.socket.remoteAddress ?? ''}\n`);
  });
  const { port, close } = await listenTracked(server, host);
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  return { host, port, url, close };
}

/** A port nothing listens on (bound then released). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const { port, close } = await listenTracked(createServer(), host);
  await close();
  return port;
}

export interface TestGateway {
  gw: Gateway;
  host: string;
  port: number;
  /** Access-log lines written so far, parsed. */
  logs: Array<Record<string, unknown>>;
  /** The first access-log line matching `pred`, waiting for it (sessions log after both sides close). */
  accessLog(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown> | undefined>;
  close(): Promise<void>;
}

/** Polls `logs` until a line with message `msg` matches `pred`; bounded by `timeoutMs`. */
export async function waitForLogMessage(
  logs: Array<Record<string, unknown>>,
  msg: string,
  pred: (line: Record<string, unknown>) => boolean = () => true,
  timeoutMs = 3_000,
): Promise<Record<string, unknown> | undefined> {
  for (let waited = 0; waited <= timeoutMs; waited += 20) {
    const line = logs.find((l) => l.msg === msg && pred(l));
    if (line) return line;
    await new Promise((r) => setTimeout(r, 20));
  }
  return undefined;
}

/** Polls `logs` until a `session end` line matches; bounded by `timeoutMs`. */
export async function waitForLog(
  logs: Array<Record<string, unknown>>,
  pred: (line: Record<string, unknown>) => boolean,
  timeoutMs = 3_000,
): Promise<Record<string, unknown> | undefined> {
  return waitForLogMessage(logs, 'session end', pred, timeoutMs);
}

/** A logger whose JSON lines land in `logs` (for access-log assertions). */
export function memoryLogger(level = 'info'): { log: Logger; logs: Array<Record<string, unknown>> } {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, sink), logs };
}

/**
 * Starts a gateway from a config object written as YAML would be (durations as strings),
 * through the real loader, listening on 127.0.0.1:0 unless `listen` is given.
 */
export async function startGateway(
  partial: Record<string, unknown> = {},
  opts: { source?: string; keepAliveSweepMs?: number; logLevel?: string; udpBufferBytes?: number } = {},
): Promise<TestGateway> {
  const text = stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial });
  const config = parseConfig(text, opts.source ?? '/tmp/socksgate-test.yaml', {});
  // `logLevel: 'debug'` for a test that waits on an internal event only a debug line tells of.
  const { log, logs } = memoryLogger(opts.logLevel);
  const gw = await Gateway.start(config, {
    log,
    ...(opts.keepAliveSweepMs === undefined ? {} : { keepAliveSweepMs: opts.keepAliveSweepMs }),
    ...(opts.udpBufferBytes === undefined ? {} : { udpBufferBytes: opts.udpBufferBytes }),
  });
  const addr = gw.addresses[0]!;
  return { gw, host: addr.address, port: addr.port, logs, accessLog: (pred, ms) => waitForLog(logs, pred, ms), close: () => gw.close(0) };
}

/** An echo server on 127.0.0.1 and a gateway started from `config`, both closed by `t.after`. */
export async function echoAndGateway(t: TestContext, config: Record<string, unknown> = {}): Promise<{ echo: TestServer; gw: TestGateway }> {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway(config);
  t.after(() => gw.close());
  return { echo, gw };
}

/**
 * `server` listening on 127.0.0.1:0 as the destination and a gateway started from `config`
 * in front of it, both closed by `t.after`.
 */
export async function gatewayTo(t: TestContext, server: Server, config: Record<string, unknown> = {}): Promise<{ gw: TestGateway; destPort: number }> {
  const dest = await listenTracked(server);
  t.after(() => dest.close());
  const gw = await startGateway(config);
  t.after(() => gw.close());
  return { gw, destPort: dest.port };
}

/**
 * SOCKS5 CONNECT to `dest` through the proxy at `proxyPort`, with the `socks` package as the
 * real client; `proxy` adds a host other than 127.0.0.1 or credentials.
 */
export function socksConnect(
  proxyPort: number,
  dest: { host: string; port: number },
  timeout: number,
  proxy: { host?: string; userId?: string; password?: string } = {},
): ReturnType<typeof SocksClient.createConnection> {
  return SocksClient.createConnection({
    proxy: { host: proxy.host ?? '127.0.0.1', port: proxyPort, type: 5, userId: proxy.userId, password: proxy.password },
    command: 'connect',
    destination: dest,
    timeout,
  });
}

/** A raw TCP client for byte-level protocol tests. */
export async function rawClient(port: number, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ port, host, allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

/**
 * Writes `request` on `s` and reads its whole response (the head and a Content-Length body;
 * bounded to 3 s); returns the response as latin1 text, possibly cut short.
 */
export async function httpExchange(s: Socket, request: string): Promise<string> {
  s.write(request);
  let got = '';
  for (let waited = 0; waited < 3_000; waited += 10) {
    const end = got.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(got);
    if (end >= 0 && length && got.length >= end + 4 + Number(length[1])) break;
    got += (await readBytes(s, 1 << 16, 10)).toString('latin1');
  }
  return got;
}

/** Reads until `n` bytes arrived or the socket ended; returns what came. */
export async function readBytes(s: Socket, n: number, timeoutMs = 3_000): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let got = 0;
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('end', done);
      s.off('close', done);
      s.pause(); // keep what follows for the next reader
      const all = Buffer.concat(chunks);
      if (all.length > n) s.unshift(all.subarray(n));
      resolve(all.subarray(0, n));
    };
    const onData = (c: Buffer): void => {
      chunks.push(c);
      got += c.length;
      if (got >= n) done();
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('data', onData);
    s.once('end', done);
    s.once('close', done);
    s.resume();
  });
}

/** Resolves true when the peer closed (end or close) within the time, false otherwise. */
export function closedWithin(s: Socket, ms = 3_000): Promise<boolean> {
  if (s.readableEnded || s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const yes = (): void => {
      clearTimeout(timer);
      resolve(true);
    };
    s.once('end', yes);
    s.once('close', yes);
    s.resume();
  });
}

/**
 * The REP byte a SOCKS5 proxy answers a CONNECT with (RFC 1928 §6), read off the wire by a
 * raw client, so a test sees the code itself rather than a client library's reading of it.
 * Credentials go by RFC 1929. Rejects when the proxy refuses the method or the password, or
 * closes before a reply.
 */
export async function socks5Rep(
  proxyPort: number,
  dest: { host: string; port: number },
  creds?: { user: string; pass: string },
  proxyHost = '127.0.0.1',
): Promise<number> {
  const s = await rawClient(proxyPort, proxyHost);
  s.on('error', () => {});
  try {
    const method = creds ? 0x02 : 0x00;
    s.write(Buffer.from([5, 1, method]));
    const chosen = await readBytes(s, 2);
    if (chosen[1] !== method) throw new Error(`method refused: ${chosen.toString('hex')}`);
    if (creds) {
      const u = Buffer.from(creds.user);
      const p = Buffer.from(creds.pass);
      s.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
      const status = await readBytes(s, 2);
      if (status.length < 2 || status[1] !== 0) throw new Error(`authentication failed: ${status.toString('hex')}`);
    }
    const port = Buffer.alloc(2);
    port.writeUInt16BE(dest.port);
    let addr: Buffer;
    if (isIPv4(dest.host)) addr = Buffer.from([1, ...dest.host.split('.').map(Number)]);
    else if (isIPv6(dest.host)) throw new Error('socks5Rep: IPv6 destinations are not needed yet');
    else addr = Buffer.concat([Buffer.from([3, Buffer.byteLength(dest.host)]), Buffer.from(dest.host)]);
    s.write(Buffer.concat([Buffer.from([5, 1, 0]), addr, port]));
    const head = await readBytes(s, 2, 10_000);
    if (head.length < 2 || head[0] !== 5) throw new Error(`no reply: ${head.toString('hex')}`);
    return head[1]!;
  } finally {
    s.destroy();
  }
}
