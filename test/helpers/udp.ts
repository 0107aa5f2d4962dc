// UDP fixtures: an echo server that records who sent, and a SOCKS5 UDP client on top of
// the `socks` package (its associate command and UDP frame helpers).

import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import type { TestContext } from 'node:test';
import { SocksClient, type SocksClientOptions, type SocksRemoteHost } from 'socks';
import { ipv6ToBytes, ipv6ToText } from '../../src/protocol/address.js';
import { startGateway, type TestGateway } from './index.js';

export interface UdpEchoServer {
  host: string;
  port: number;
  /** `address:port` of every datagram received, in order. */
  peers: string[];
  close(): Promise<void>;
}

/** Sends every datagram back to where it came from. */
export async function startUdpEchoServer(host = '127.0.0.1'): Promise<UdpEchoServer> {
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  const peers: string[] = [];
  socket.on('message', (msg: Buffer, rinfo: RemoteInfo) => {
    peers.push(`${rinfo.address}:${rinfo.port}`);
    socket.send(msg, rinfo.port, rinfo.address);
  });
  socket.bind(0, host);
  await once(socket, 'listening');
  return { host, port: socket.address().port, peers, close: () => closeDgram(socket) };
}

export function closeDgram(socket: DgramSocket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

/** `createConnection` takes CONNECT only: ASSOCIATE runs on a SocksClient of its own. */
export function associate(options: SocksClientOptions): Promise<{ socket: Socket; remoteHost?: SocksRemoteHost }> {
  return new Promise((resolve, reject) => {
    const client = new SocksClient(options);
    client.once('established', (info) => {
      client.removeAllListeners();
      resolve(info);
    });
    client.once('error', (err) => {
      client.removeAllListeners();
      reject(err);
    });
    client.connect();
  });
}

export interface Answer {
  host: string;
  port: number;
  data: Buffer;
}

/** A SOCKS5 UDP client: one association, one local socket, frames built by `socks`. */
export interface SocksUdpClient {
  /** The association's TCP control connection. */
  control: Socket;
  /** The relay address from the reply (BND.ADDR, BND.PORT). */
  relay: { host: string; port: number };
  /** The local datagram socket (bound before the request so DST.PORT names it). */
  socket: DgramSocket;
  send(dest: { host: string; port: number }, data: Buffer | string): void;
  /** The next answer, or undefined when none arrives within `ms`. */
  receive(ms?: number): Promise<Answer | undefined>;
  close(): Promise<void>;
}

export async function socksUdpClient(
  proxy: { host: string; port: number },
  opts: { declarePort?: boolean; family?: 4 | 6; login?: { user: string; pass: string } } = {},
): Promise<SocksUdpClient> {
  const family = opts.family ?? (proxy.host.includes(':') ? 6 : 4);
  const socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4' });
  socket.bind(0, family === 6 ? '::1' : '127.0.0.1');
  await once(socket, 'listening');
  const declared = opts.declarePort === false ? 0 : socket.address().port;
  const info = await associate({
    proxy: { host: proxy.host, port: proxy.port, type: 5, ...(opts.login ? { userId: opts.login.user, password: opts.login.pass } : {}) },
    command: 'associate',
    destination: { host: family === 6 ? '::' : '0.0.0.0', port: declared },
    timeout: 3_000,
  });
  const control = info.socket;
  control.on('error', () => {});
  const relay = { host: info.remoteHost?.host ?? proxy.host, port: info.remoteHost?.port ?? 0 };
  const inbox: Answer[] = [];
  const waiters: Array<(a: Answer) => void> = [];
  socket.on('message', (msg: Buffer) => {
    const frame = SocksClient.parseUDPFrame(msg);
    // `socks` prints IPv6 in full (0000:...:0001); compare in the form Node prints.
    const host = frame.remoteHost.host.includes(':') ? ipv6ToText(ipv6ToBytes(frame.remoteHost.host), 0) : frame.remoteHost.host;
    const answer = { host, port: frame.remoteHost.port, data: frame.data };
    const w = waiters.shift();
    if (w) w(answer);
    else inbox.push(answer);
  });
  return {
    control,
    relay,
    socket,
    send(dest, data) {
      const frame = SocksClient.createUDPFrame({ remoteHost: dest, data: Buffer.from(data) });
      socket.send(frame, relay.port, relay.host);
    },
    receive(ms = 2_000) {
      const ready = inbox.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve) => {
        const timer = setTimeout(() => {
          const i = waiters.indexOf(got);
          if (i >= 0) waiters.splice(i, 1);
          resolve(undefined);
        }, ms);
        const got = (a: Answer): void => {
          clearTimeout(timer);
          resolve(a);
        };
        waiters.push(got);
      });
    },
    async close() {
      control.destroy();
      await closeDgram(socket);
    },
  };
}

/** Sends one raw datagram from a fresh socket bound on `from` (port `fromPort`, any when 0) and closes it. */
export async function sendRaw(bytes: Buffer, to: { host: string; port: number }, from = '127.0.0.1', fromPort = 0): Promise<void> {
  const s = createSocket({ type: from.includes(':') ? 'udp6' : 'udp4' });
  s.bind(fromPort, from);
  await once(s, 'listening');
  await new Promise<void>((resolve, reject) => s.send(bytes, to.port, to.host, (err) => (err ? reject(err) : resolve())));
  await closeDgram(s);
}

/**
 * A SOCKS5 UDP request header for 127.0.0.1:`port` (RFC 1928 §7) and `data`, built by hand
 * rather than by `socks` so that a test can send what no client library would (FRAG ≠ 0).
 */
export function rawFrame(port: number, data: string, frag = 0): Buffer {
  const frame = Buffer.concat([Buffer.from([0, 0, frag, 1, 127, 0, 0, 1]), Buffer.alloc(2), Buffer.from(data)]);
  frame.writeUInt16BE(port, 8);
  return frame;
}

/** The access-log line of the finished UDP association, once it is written (bounded wait). */
export function udpLogLine(gw: TestGateway, timeoutMs?: number): Promise<Record<string, unknown> | undefined> {
  return gw.accessLog((l) => l['cmd'] === 'udp', timeoutMs);
}

export interface UdpAssociation {
  echo: UdpEchoServer;
  gw: TestGateway;
  c: SocksUdpClient;
}

/**
 * A UDP echo server on `host`, a gateway started from `config` and one SOCKS5 UDP client
 * associated through it from `host`, each closed by `t.after`.
 */
export async function udpAssociation(
  t: TestContext,
  config: Record<string, unknown> = {},
  opts: { host?: string; declarePort?: boolean } = {},
): Promise<UdpAssociation> {
  const host = opts.host ?? '127.0.0.1';
  const echo = await startUdpEchoServer(host);
  t.after(() => echo.close());
  const gw = await startGateway(config);
  t.after(() => gw.close());
  const c = await socksUdpClient({ host, port: gw.port }, opts.declarePort === undefined ? {} : { declarePort: opts.declarePort });
  t.after(() => c.close());
  return { echo, gw, c };
}

/**
 * A gateway that sends everything through the SOCKS5 upstream on 127.0.0.1:`upstreamPort`
 * (a scripted one, as a test instrument), and a UDP client of it; both closed after the test.
 */
export async function udpThroughUpstream(t: TestContext, upstreamPort: number, opts: { logLevel?: string } = {}): Promise<{ gw: TestGateway; c: SocksUdpClient }> {
  const gw = await startGateway({ upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstreamPort } }, default: 'up' }, opts);
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  return { gw, c };
}

/**
 * Ports of this process's UDP sockets bound on the IPv4 address `host` (Linux /proc): how a
 * test finds a socket the gateway opened for itself, which it has no handle on.
 */
export function ownUdpPorts(host = '127.0.0.1'): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(m[1]!);
    } catch {
      // closed meanwhile
    }
  }
  // /proc/net/udp writes an IPv4 address as the hex of its 32 bits in host (little-endian) order.
  const hex = host.split('.').map((b) => Number(b).toString(16).padStart(2, '0').toUpperCase()).reverse().join('');
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/udp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    const [addr, port] = (f[1] ?? '').split(':');
    if (addr === hex && port !== undefined && inodes.has(f[9] ?? '')) ports.add(parseInt(port, 16));
  }
  return ports;
}
