// Byte-level proxy clients that can leave from any loopback address (`from`: 127.0.0.2 is
// another client IP on the same machine) and report exactly what the gateway answered.
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { readBytes } from './index.js';

export interface RawAnswer {
  socket: Socket;
  /** SOCKS5 REP, SOCKS4 CD (0x5A/0x5B), or the HTTP status; -1 when the gateway closed without a full answer. */
  code: number;
}

export interface RawOptions {
  from?: string;
  user?: string;
  password?: string;
  timeoutMs?: number;
  /** Bytes sent first, such as a PROXY protocol header from a load balancer. */
  prefix?: Buffer;
}

async function open(port: number, opts: RawOptions): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port, allowHalfOpen: true, ...(opts.from ? { localAddress: opts.from } : {}) });
  s.on('error', () => {});
  await once(s, 'connect');
  if (opts.prefix) s.write(opts.prefix);
  return s;
}

const portBytes = (p: number): Buffer => Buffer.from([p >> 8, p & 0xff]);

/** SOCKS5 CONNECT to 127.0.0.1:`destPort` (RFC 1928), with RFC 1929 auth when `user` is given. */
export async function socks5Raw(port: number, destPort: number, opts: RawOptions = {}): Promise<RawAnswer> {
  const socket = await open(port, opts);
  const ms = opts.timeoutMs ?? 3_000;
  socket.write(Buffer.from([5, 1, opts.user === undefined ? 0 : 2]));
  const method = await readBytes(socket, 2, ms);
  if (method.length < 2 || method[1] === 0xff) return { socket, code: -1 };
  if (opts.user !== undefined) {
    const u = Buffer.from(opts.user);
    const p = Buffer.from(opts.password ?? '');
    socket.write(Buffer.concat([Buffer.from([1, u.length]), u, Buffer.from([p.length]), p]));
    const status = await readBytes(socket, 2, ms);
    if (status.length < 2 || status[1] !== 0) return { socket, code: -1 };
  }
  socket.write(Buffer.concat([Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]), portBytes(destPort)]));
  const reply = await readBytes(socket, 10, ms);
  return { socket, code: reply.length === 10 ? reply[1]! : -1 };
}

/** SOCKS4 CONNECT to 127.0.0.1:`destPort`, empty USERID. */
export async function socks4Raw(port: number, destPort: number, opts: RawOptions = {}): Promise<RawAnswer> {
  const socket = await open(port, opts);
  socket.write(Buffer.concat([Buffer.from([4, 1]), portBytes(destPort), Buffer.from([127, 0, 0, 1, 0])]));
  const reply = await readBytes(socket, 8, opts.timeoutMs ?? 3_000);
  return { socket, code: reply.length === 8 ? reply[1]! : -1 };
}

/** HTTP CONNECT 127.0.0.1:`destPort` (RFC 9110 §9.3.6), Basic Proxy-Authorization when `user` is given. */
export async function httpConnectRaw(port: number, destPort: number, opts: RawOptions = {}): Promise<RawAnswer> {
  const socket = await open(port, opts);
  const auth = opts.user === undefined ? '' : `Proxy-Authorization: Basic ${Buffer.from(`${opts.user}:${opts.password ?? ''}`).toString('base64')}\r\n`;
  socket.write(`CONNECT 127.0.0.1:${destPort} HTTP/1.1\r\nHost: 127.0.0.1:${destPort}\r\n${auth}\r\n`);
  const head = await readHead(socket, opts.timeoutMs ?? 3_000);
  const m = /^HTTP\/1\.[01] (\d{3}) /.exec(head);
  return { socket, code: m ? Number(m[1]) : -1 };
}

/** Reads up to the end of a response head (bounded); what follows stays unread. */
export async function readHead(socket: Socket, timeoutMs: number): Promise<string> {
  let head = Buffer.alloc(0);
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const chunk = await readBytes(socket, 1, deadline - Date.now());
    if (chunk.length === 0) break;
    head = Buffer.concat([head, chunk]);
    if (head.subarray(-4).toString('latin1') === '\r\n\r\n') break;
  }
  return head.toString('latin1');
}

/** Writes `text` and resolves with the first chunk echoed back ('' if none came in time). */
export async function echoOnce(socket: Socket, text: string, timeoutMs = 3_000): Promise<string> {
  socket.write(text);
  return (await readBytes(socket, Buffer.byteLength(text), timeoutMs)).toString();
}
