// Pure codec for SOCKS4 (https://www.openssh.com/txt/socks4.protocol) and its 4a extension
// (https://www.openssh.com/txt/socks4a.protocol). No I/O: a decoder is handed everything
// buffered so far and answers NEED_DATA, a request and its byte size, or throws ProtocolError.
//
//   request: VN=4 CD DSTPORT(2) DSTIP(4) USERID NUL [HOSTNAME NUL when DSTIP is 0.0.0.x, x≠0]
//   reply:   VN=0 CD DSTPORT(2) DSTIP(4), CD 90 granted, 91 rejected or failed

import { isUtf8 } from 'node:buffer';
import { ProtocolError, Rep } from '../errors.js';
import { NEED_DATA } from './address.js';
import { decodeName, nameBytes } from './name.js';
import { MAX_HOSTNAME, MAX_USERID, SOCKS4_VERSION, Socks4Cmd, type Socks4Reply } from './constants.js';
import type { Decoded } from './messages.js';
import type { Address } from './types.js';

export interface Socks4Request {
  cmd: Socks4Cmd;
  dest: Address;
  /** The USERID field: logged, never trusted as an identity. */
  userId: string;
}

const HEADER = 8; // VN CD DSTPORT DSTIP

export function decodeSocks4Request(buf: Buffer): Decoded<Socks4Request> {
  if (buf.length < 1) return NEED_DATA;
  if (buf[0] !== SOCKS4_VERSION) throw new ProtocolError(`socks4 version ${buf[0]}`, Rep.GENERAL_FAILURE);
  if (buf.length < 2) return NEED_DATA;
  const cmd = buf[1]!;
  const userEnd = terminator(buf, HEADER, MAX_USERID, 'USERID');
  if (userEnd === NEED_DATA) return NEED_DATA;
  const port = buf.readUInt16BE(2);
  const ip = `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`;
  // No encoding is given; read as UTF-8, as RFC 1929 usernames are (what clients send today).
  // Bytes that are not UTF-8 are read one char a byte: the log shows what was sent, and a
  // replacement character per byte would triple its length.
  const userId = buf.toString(isUtf8(buf.subarray(HEADER, userEnd)) ? 'utf8' : 'latin1', HEADER, userEnd);
  // SOCKS4a: DSTIP 0.0.0.x (x non-zero) means "the name follows the USERID".
  const is4a = buf[4] === 0 && buf[5] === 0 && buf[6] === 0 && buf[7] !== 0;
  if (!is4a) return request(cmd, { host: ip, port }, userId, userEnd + 1);
  const nameEnd = terminator(buf, userEnd + 1, MAX_HOSTNAME, 'HOSTNAME', userId);
  if (nameEnd === NEED_DATA) return NEED_DATA;
  const host = decodeName(buf, userEnd + 1, nameEnd);
  if (host === '') throw new Socks4RequestError('socks4a empty hostname', Rep.GENERAL_FAILURE, userId);
  return request(cmd, { host, port }, userId, nameEnd + 1);
}

/**
 * A request refused once its USERID was read: the log keeps the USERID, and the destination
 * when that was read too (an unknown CD: reported once the request is in, as SOCKS5's
 * UnknownCommandError is, so the log names what was asked for; 0x07 there, 0x5B to the client).
 */
export class Socks4RequestError extends ProtocolError {
  readonly userId: string;
  readonly dest: Address | undefined;
  constructor(message: string, rep: Rep, userId: string, dest?: Address) {
    super(message, rep);
    this.userId = userId;
    this.dest = dest;
  }
}

function request(cmd: number, dest: Address, userId: string, size: number): Decoded<Socks4Request> {
  if (cmd !== Socks4Cmd.CONNECT && cmd !== Socks4Cmd.BIND) throw new Socks4RequestError(`socks4 command ${cmd}`, Rep.COMMAND_NOT_SUPPORTED, userId, dest);
  return { value: { cmd, dest, userId }, size };
}

/**
 * Index of the NUL ending the field that starts at `from`, NEED_DATA, or a ProtocolError past
 * `max` (carrying `userId` when that was read before the field).
 */
function terminator(buf: Buffer, from: number, max: number, what: string, userId?: string): number | typeof NEED_DATA {
  if (buf.length < from) return NEED_DATA;
  const end = buf.indexOf(0, from);
  const limit = from + max;
  if (end !== -1 && end <= limit) return end;
  if (end === -1 && buf.length <= limit) return NEED_DATA;
  const message = `socks4 ${what} longer than ${max} bytes`;
  throw userId === undefined ? new ProtocolError(message, Rep.GENERAL_FAILURE) : new Socks4RequestError(message, Rep.GENERAL_FAILURE, userId);
}

const DOTTED_QUAD = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const MAPPED_QUAD = /^(?:::ffff:)?(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/i;

/**
 * The four bytes of a dotted-quad IPv4 address, or undefined for anything else: "300.1.1.1"
 * or "01.2.3.4" are names (a request sends them as SOCKS4a hostnames), never another address.
 */
function ipv4Bytes(host: string, pattern: RegExp): number[] | undefined {
  const m = pattern.exec(host);
  const octets = m?.slice(1).map((o) => (o === String(Number(o)) && Number(o) <= 255 ? Number(o) : -1));
  return octets && !octets.includes(-1) ? octets : undefined;
}

export function encodeSocks4Request(cmd: number, dest: Address, userId = ''): Buffer {
  // 0.0.0.x (x ≠ 0) is SOCKS4a's marker, not an address a request can name: it goes as a name.
  const quad = ipv4Bytes(dest.host, DOTTED_QUAD);
  const v4 = quad && !(quad[0] === 0 && quad[1] === 0 && quad[2] === 0 && quad[3] !== 0) ? quad : undefined;
  const head = Buffer.alloc(HEADER);
  head[0] = SOCKS4_VERSION;
  head[1] = cmd;
  head.writeUInt16BE(dest.port, 2);
  const user = Buffer.concat([Buffer.from(userId, 'utf8'), Buffer.from([0])]);
  if (v4) {
    head.set(v4, 4);
    return Buffer.concat([head, user]);
  }
  head[7] = 1; // 0.0.0.1: SOCKS4a
  return Buffer.concat([head, user, nameBytes(dest.host), Buffer.from([0])]);
}

/** Whether DSTIP can carry `host`: IPv4, in either form a socket reports it. */
export function fitsSocks4Reply(host: string): boolean {
  return ipv4Bytes(host, MAPPED_QUAD) !== undefined;
}

/**
 * The 8-byte reply. DSTPORT/DSTIP matter only for BIND (where the client must connect, then
 * who did); SOCKS4 has no IPv6, so a non-IPv4 address is sent as 0.0.0.0.
 */
export function encodeSocks4Reply(code: Socks4Reply, bound?: Address): Buffer {
  const out = Buffer.alloc(HEADER);
  out[1] = code;
  if (!bound) return out;
  out.writeUInt16BE(bound.port, 2);
  const v4 = ipv4Bytes(bound.host, MAPPED_QUAD); // a socket's own address may be IPv4-mapped
  if (v4) out.set(v4, 4);
  return out;
}

export function decodeSocks4Reply(buf: Buffer): Decoded<{ code: number; bound: Address }> {
  if (buf.length < HEADER) return NEED_DATA;
  if (buf[0] !== 0) throw new ProtocolError(`socks4 reply version ${buf[0]}`, Rep.GENERAL_FAILURE);
  return { value: { code: buf[1]!, bound: { host: `${buf[4]}.${buf[5]}.${buf[6]}.${buf[7]}`, port: buf.readUInt16BE(2) } }, size: HEADER };
}
