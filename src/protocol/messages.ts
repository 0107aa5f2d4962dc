// Pure encoders and decoders for every SOCKS5 message (RFC 1928, RFC 1929). No I/O, no state:
// a decoder is handed everything buffered so far and answers NEED_DATA, a message and its
// byte size, or throws a ProtocolError carrying the reply code to send.

import { ProtocolError, Rep } from '../errors.js';
import { decodeAddressAt, encodeAddress, NEED_DATA, toWire, writeWire } from './address.js';
import { decodeCredential } from './charset.js';
import { AUTH_VERSION, Cmd, VERSION } from './constants.js';
import type { Address, UdpDatagram } from './types.js';

export { NEED_DATA, encodeAddress };
export type Decoded<T> = { value: T; size: number } | typeof NEED_DATA;

const ANY_ADDRESS: Address = { host: '0.0.0.0', port: 0 };

// RFC 1928 §3: VER NMETHODS METHODS. NMETHODS 0 is well-formed; the session answers 0xFF.
export function decodeGreeting(buf: Buffer): Decoded<{ methods: number[] }> {
  if (buf.length < 1) return NEED_DATA;
  if (buf[0] !== VERSION) throw new ProtocolError(`greeting version ${buf[0]}`, Rep.GENERAL_FAILURE);
  if (buf.length < 2) return NEED_DATA;
  const n = buf[1]!;
  if (buf.length < 2 + n) return NEED_DATA;
  return { value: { methods: [...buf.subarray(2, 2 + n)] }, size: 2 + n };
}

export function encodeGreeting(methods: readonly number[]): Buffer {
  if (methods.length > 255) throw new RangeError(`${methods.length} methods (max 255)`);
  return Buffer.from([VERSION, methods.length, ...methods]);
}

/** RFC 1928 §3: the server's METHOD selection. */
export function encodeMethod(m: number): Buffer {
  return Buffer.from([VERSION, m]);
}

// RFC 1929 §2: VER ULEN UNAME PLEN PASSWD. Names and passwords are read as UTF-8, the way a
// config file spells them, or as ISO-8859-1 when their bytes are not UTF-8 (Java's clients).
export function decodeAuthRequest(buf: Buffer): Decoded<{ username: string; password: string }> {
  if (buf.length < 1) return NEED_DATA;
  if (buf[0] !== AUTH_VERSION) throw new ProtocolError(`auth version ${buf[0]}`, Rep.GENERAL_FAILURE);
  if (buf.length < 2) return NEED_DATA;
  const ulen = buf[1]!;
  if (buf.length < 3 + ulen) return NEED_DATA;
  const plen = buf[2 + ulen]!;
  const size = 3 + ulen + plen;
  if (buf.length < size) return NEED_DATA;
  return {
    value: { username: decodeCredential(buf.subarray(2, 2 + ulen)), password: decodeCredential(buf.subarray(3 + ulen, size)) },
    size,
  };
}

export function encodeAuthRequest(username: string, password: string): Buffer {
  const u = Buffer.from(username, 'utf8');
  const p = Buffer.from(password, 'utf8');
  if (u.length > 255 || p.length > 255) throw new RangeError('username and password are limited to 255 bytes');
  return Buffer.concat([Buffer.from([AUTH_VERSION, u.length]), u, Buffer.from([p.length]), p]);
}

/** RFC 1929 §2: STATUS 0 is success; any other value means failure and the connection closes. */
export function encodeAuthStatus(ok: boolean): Buffer {
  return Buffer.from([AUTH_VERSION, ok ? 0x00 : 0x01]);
}

function isCmd(c: number): c is Cmd {
  return c === Cmd.CONNECT || c === Cmd.BIND || c === Cmd.UDP_ASSOCIATE;
}

/**
 * RFC 1928 §4 CMD the gateway does not carry (Tor's RESOLVE 0xF0, say): 0x07. The request was
 * read whole, so its destination is known and goes in the access log with the refusal.
 */
export class UnknownCommandError extends ProtocolError {
  readonly dest: Address;
  constructor(cmd: number, dest: Address) {
    super(`unknown command ${cmd}`, Rep.COMMAND_NOT_SUPPORTED);
    this.dest = dest;
  }
}

// RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT. RSV is ignored. An unknown CMD is only
// reported once the whole request is in, so the client gets 0x07 rather than a truncated read.
export function decodeRequest(buf: Buffer): Decoded<{ cmd: Cmd; dest: Address }> {
  if (buf.length < 1) return NEED_DATA;
  if (buf[0] !== VERSION) throw new ProtocolError(`request version ${buf[0]}`, Rep.GENERAL_FAILURE);
  if (buf.length < 4) return NEED_DATA;
  const a = decodeAddressAt(buf, 3);
  if (a === NEED_DATA) return NEED_DATA;
  const cmd = buf[1]!;
  if (!isCmd(cmd)) throw new UnknownCommandError(cmd, a.address);
  return { value: { cmd, dest: a.address }, size: a.end };
}

export function encodeRequest(cmd: number, dest: Address): Buffer {
  return header3(VERSION, cmd, dest);
}

// RFC 1928 §6: VER REP RSV ATYP BND.ADDR BND.PORT.
export function encodeReply(rep: Rep, bound: Address = ANY_ADDRESS): Buffer {
  return header3(VERSION, rep, bound);
}

export function decodeReply(buf: Buffer): Decoded<{ rep: number; bound: Address }> {
  if (buf.length < 1) return NEED_DATA;
  if (buf[0] !== VERSION) throw new ProtocolError(`reply version ${buf[0]}`, Rep.GENERAL_FAILURE);
  if (buf.length < 4) return NEED_DATA;
  const a = decodeAddressAt(buf, 3);
  if (a === NEED_DATA) return NEED_DATA;
  return { value: { rep: buf[1]!, bound: a.address }, size: a.end };
}

/** Three leading bytes (the third is 0: RSV, or FRAG's neighbour) then an address. */
function header3(b0: number, b1: number, addr: Address): Buffer {
  const w = toWire(addr);
  const out = Buffer.allocUnsafe(3 + w.length);
  out[0] = b0;
  out[1] = b1;
  out[2] = 0x00;
  writeWire(out, 3, w);
  return out;
}

/**
 * RFC 1928 §7: RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. A datagram is complete or bad, so a
 * truncated header throws ProtocolError too. RSV is ignored. `payload` is a view into `buf`.
 */
export function decodeUdpDatagram(buf: Buffer): UdpDatagram {
  if (buf.length < 4) throw new ProtocolError('UDP datagram shorter than its header', Rep.GENERAL_FAILURE);
  const a = decodeAddressAt(buf, 3);
  if (a === NEED_DATA) throw new ProtocolError('truncated UDP datagram header', Rep.GENERAL_FAILURE);
  return { frag: buf[2]!, dest: a.address, payload: buf.subarray(a.end) };
}

/**
 * The RFC 1928 §7 header alone (RSV(2) FRAG ATYP DST.ADDR DST.PORT), to go in front of a
 * payload without copying it. Throws ProtocolError for a host no header can name.
 */
export function encodeUdpHeader(dest: Address, frag = 0): Buffer {
  const w = toWire(dest);
  const out = Buffer.allocUnsafe(3 + w.length);
  out[0] = 0x00;
  out[1] = 0x00;
  out[2] = frag;
  writeWire(out, 3, w);
  return out;
}

export function encodeUdpDatagram(dest: Address, payload: Buffer, frag = 0): Buffer {
  const head = encodeUdpHeader(dest, frag);
  const out = Buffer.allocUnsafe(head.length + payload.length);
  head.copy(out, 0);
  payload.copy(out, head.length);
  return out;
}

/**
 * True when `datagram` starts with `header` from FRAG on (RSV is ignored, as decoding does):
 * the same destination as a datagram already decoded, so it need not be decoded again.
 */
export function hasUdpHeader(datagram: Buffer, header: Buffer): boolean {
  const n = header.length;
  if (datagram.length < n) return false;
  for (let i = 2; i < n; i++) if (datagram[i] !== header[i]) return false;
  return true;
}
