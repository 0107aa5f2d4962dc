// ATYP + DST.ADDR + DST.PORT (RFC 1928 §4, §5), shared by requests, replies and UDP headers.

import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError, Rep } from '../errors.js';
import { Atyp } from './constants.js';
import { decodeName, nameBytes } from './name.js';
import type { Address } from './types.js';

/** What a decoder returns when the buffer holds only a prefix of the message. */
export const NEED_DATA: unique symbol = Symbol('need-data');

export interface DecodedAddress {
  address: Address;
  /** Offset just past DST.PORT. */
  end: number;
}

/**
 * Decodes ATYP+ADDR+PORT starting at `off`. NEED_DATA when `buf` ends early; throws
 * ProtocolError 0x08 for an unknown ATYP and 0x01 for a zero-length domain as soon as
 * those bytes are present (no point waiting for the rest).
 */
export function decodeAddressAt(buf: Buffer, off: number): DecodedAddress | typeof NEED_DATA {
  if (buf.length <= off) return NEED_DATA;
  const atyp = buf[off]!;
  let host: string;
  let p: number;
  switch (atyp) {
    case Atyp.IPV4:
      if (buf.length < off + 7) return NEED_DATA;
      host = `${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}.${buf[off + 4]}`;
      p = off + 5;
      break;
    case Atyp.DOMAIN: {
      if (buf.length <= off + 1) return NEED_DATA;
      const len = buf[off + 1]!;
      if (len === 0) throw new ProtocolError('zero-length domain name', Rep.GENERAL_FAILURE);
      if (buf.length < off + 4 + len) return NEED_DATA;
      // RFC 1928 §5: octets, no encoding given; clients send UTF-8 when they send non-ASCII.
      host = decodeName(buf, off + 2, off + 2 + len);
      p = off + 2 + len;
      break;
    }
    case Atyp.IPV6:
      if (buf.length < off + 19) return NEED_DATA;
      host = ipv6ToText(buf, off + 1);
      p = off + 17;
      break;
    default:
      throw new ProtocolError(`unknown address type ${atyp}`, Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  }
  return { address: { host, port: buf.readUInt16BE(p) }, end: p + 2 };
}

/** An address resolved to its wire form once, so a message is sized and written in one pass. */
export interface WireAddress {
  atyp: Atyp;
  /** ADDR without the domain length byte (4 or 16 bytes, or the domain name). */
  addr: Buffer;
  port: number;
  /** Byte length of ATYP+ADDR+PORT. */
  length: number;
}

/**
 * ATYP+ADDR for `a`: IPv4 text → 01, IPv6 text → 04 (an IPv4-mapped ::ffff:a.b.c.d → 01
 * a.b.c.d, since that is what the peer can use), anything else → 03 domain. A domain longer than
 * 255 bytes, or empty, throws ProtocolError (it cannot be said in SOCKS5).
 */
export function toWire(a: Address): WireAddress {
  const host = a.host;
  if (isIPv4(host)) return { atyp: Atyp.IPV4, addr: ipv4ToBytes(host), port: a.port, length: 7 };
  // A ':' is the cheap test; isIPv6's regex only runs on candidates.
  if (host.includes(':') && isIPv6(host)) {
    const bytes = ipv6ToBytes(host);
    if (isIPv4Mapped(bytes)) return { atyp: Atyp.IPV4, addr: bytes.subarray(12), port: a.port, length: 7 };
    return { atyp: Atyp.IPV6, addr: bytes, port: a.port, length: 19 };
  }
  const name = domainBytes(host);
  return { atyp: Atyp.DOMAIN, addr: name, port: a.port, length: 4 + name.length };
}

/** ATYP+ADDR+PORT for `a`; see toWire for the address type chosen. */
export function encodeAddress(a: Address): Buffer {
  const w = toWire(a);
  const out = Buffer.allocUnsafe(w.length);
  writeWire(out, 0, w);
  return out;
}

/** Writes ATYP+ADDR+PORT at `off`; returns the offset just past it. */
export function writeWire(out: Buffer, off: number, w: WireAddress): number {
  out[off++] = w.atyp;
  if (w.atyp === Atyp.DOMAIN) out[off++] = w.addr.length;
  off += w.addr.copy(out, off);
  out[off++] = w.port >>> 8;
  out[off++] = w.port & 0xff;
  return off;
}

function domainBytes(host: string): Buffer {
  // Requests carry ASCII names only (see decodeName); nameBytes mirrors its decoding otherwise.
  const name = nameBytes(host);
  if (name.length === 0) throw new ProtocolError('empty domain name', Rep.GENERAL_FAILURE);
  if (name.length > 255) {
    throw new ProtocolError(`domain name of ${name.length} bytes (max 255)`, Rep.GENERAL_FAILURE);
  }
  return name;
}

function ipv4ToBytes(text: string): Buffer {
  const out = Buffer.allocUnsafe(4);
  let start = 0;
  for (let i = 0; i < 4; i++) {
    const dot = i < 3 ? text.indexOf('.', start) : text.length;
    out[i] = Number(text.slice(start, dot));
    start = dot + 1;
  }
  return out;
}

function isIPv4Mapped(b: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** 16 bytes of an IPv6 text already accepted by net.isIPv6 (a zone `%eth0` is dropped). */
export function ipv6ToBytes(text: string): Buffer {
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  const out = Buffer.alloc(16);
  const dbl = text.indexOf('::');
  const head = dbl < 0 ? text : text.slice(0, dbl);
  const tail = dbl < 0 ? '' : text.slice(dbl + 2);
  const headWords = parseWords(head);
  const tailWords = parseWords(tail);
  for (let i = 0; i < headWords.length; i++) out.writeUInt16BE(headWords[i]!, i * 2);
  const at = 16 - tailWords.length * 2;
  for (let i = 0; i < tailWords.length; i++) out.writeUInt16BE(tailWords[i]!, at + i * 2);
  return out;
}

function parseWords(part: string): number[] {
  if (part === '') return [];
  const words: number[] = [];
  for (const group of part.split(':')) {
    if (group.includes('.')) {
      const v4 = group.split('.').map(Number);
      words.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      words.push(parseInt(group, 16));
    }
  }
  return words;
}

/**
 * RFC 5952 text exactly as Node prints addresses (libuv's inet_ntop6): lower-case hex, the
 * longest run (≥2) of zero words as `::`, and ::a.b.c.d / ::ffff:a.b.c.d for embedded IPv4.
 */
export function ipv6ToText(buf: Buffer, off: number): string {
  const words: number[] = new Array<number>(8);
  for (let i = 0; i < 8; i++) words[i] = (buf[off + 2 * i]! << 8) | buf[off + 2 * i + 1]!;
  let bestBase = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestBase = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) bestBase = -1;
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (bestBase !== -1 && i >= bestBase && i < bestBase + bestLen) {
      if (i === bestBase) s += ':';
      continue;
    }
    if (i !== 0) s += ':';
    if (
      i === 6 &&
      bestBase === 0 &&
      (bestLen === 6 || (bestLen === 7 && words[7] !== 1) || (bestLen === 5 && words[5] === 0xffff))
    ) {
      return `${s}${buf[off + 12]}.${buf[off + 13]}.${buf[off + 14]}.${buf[off + 15]}`;
    }
    s += words[i]!.toString(16);
  }
  if (bestBase !== -1 && bestBase + bestLen === 8) s += ':';
  return s;
}

/**
 * An IP literal in the text Node gives a socket's peer or a datagram's source: IPv6 in RFC
 * 5952 form (`0:0:0:0:0:0:0:1` → `::1`, `::FFFF:7F00:1` → `::ffff:127.0.0.1`), so that text a
 * client wrote (a name field carries any form) compares equal to it. IPv4, and an address
 * with a zone (`fe80::1%eth0`), as written.
 */
export function peerText(ip: string): string {
  return ip.includes(':') && !ip.includes('%') && isIPv6(ip) ? ipv6ToText(ipv6ToBytes(ip), 0) : ip;
}

/** `::ffff:a.b.c.d` (what a dual-stack socket reports for an IPv4 peer) as plain `a.b.c.d`. */
export function unmapped(ip: string): string {
  return ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
}

/** `host:port`, an IPv6 host in brackets (`[::1]:1080`), as every log line and message writes it. */
export function formatAddress(a: Address): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}
