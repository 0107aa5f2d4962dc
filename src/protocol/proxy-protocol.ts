// PROXY protocol v1 (text) and v2 (binary) headers, as a TCP load balancer sends them before
// the client's first byte (HAProxy's "The PROXY protocol", versions 1 and 2). Pure like
// messages.ts: handed everything buffered so far, the decoder answers NEED_DATA, a header and
// its byte size, or throws a ProtocolError. The session owns the socket.

import { isIPv4, isIPv6 } from 'node:net';
import { ProtocolError, Rep } from '../errors.js';
import { NEED_DATA, ipv6ToBytes, ipv6ToText, peerText } from './address.js';
import type { Address } from './types.js';

export { NEED_DATA };

/**
 * `proxy` with addresses: the connection was relayed for `source`. `unspec` (v1 UNKNOWN, v2
 * AF_UNSPEC, AF_UNIX or transport UNSPEC) and `local` (v2 LOCAL: the balancer's own health
 * check) carry no usable client: the receiver keeps the real peer address (spec §2.1, §2.2).
 */
export type ProxyHeader =
  | { version: 1 | 2; command: 'proxy'; family: 'inet' | 'inet6'; source: Address; dest: Address }
  | { version: 1 | 2; command: 'proxy'; family: 'unspec' }
  | { version: 2; command: 'local'; family: 'unspec' };

export type DecodedHeader = { value: ProxyHeader; size: number } | typeof NEED_DATA;

/** §2.1: "a receiver … must not try to parse a line longer than 107 bytes" (CRLF included). */
export const V1_MAX_LENGTH = 107;
/**
 * §2.2 allows 16 + 65535 bytes. The TLVs cloud balancers add (AWS's VPC endpoint id, GCP's
 * PSC connection id, Azure's link id) are tens of bytes, but HAProxy (`set-proxy-v2-tlv-fmt`)
 * and Envoy can be told to add TLVs of their own: 4 KiB in all holds those, and anything past
 * it is refused rather than buffered.
 */
export const V2_MAX_LENGTH = 4096;

const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
// §2.2: \r\n\r\n\0\r\nQUIT\n — cannot be mistaken for any v1 or SOCKS/HTTP first bytes.
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

const fail = (why: string): never => {
  throw new ProtocolError(`PROXY header: ${why}`, Rep.GENERAL_FAILURE);
};

/** Decodes a v1 or v2 header at the start of `buf`; anything else throws as soon as it shows. */
export function decodeProxyHeader(buf: Buffer): DecodedHeader {
  if (buf.length === 0) return NEED_DATA;
  if (buf[0] === V1_PREFIX[0]) return decodeV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return decodeV2(buf);
  return fail('none sent');
}

/** True when `buf` agrees with `expected` on their common length. */
function prefixMatches(buf: Buffer, expected: Buffer): boolean {
  const n = Math.min(buf.length, expected.length);
  return buf.subarray(0, n).equals(expected.subarray(0, n));
}

// §2.1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF
function decodeV1(buf: Buffer): DecodedHeader {
  if (!prefixMatches(buf, V1_PREFIX)) return fail('not a v1 header');
  const window = buf.subarray(0, V1_MAX_LENGTH);
  const cr = window.indexOf('\r\n', 0, 'latin1');
  if (cr < 0) return window.length >= V1_MAX_LENGTH ? fail(`v1 line over ${V1_MAX_LENGTH} bytes`) : NEED_DATA;
  const size = cr + 2;
  const parts = window.toString('latin1', V1_PREFIX.length, cr).split(' ');
  const proto = parts[0];
  // UNKNOWN: "the receiver must ignore anything presented before the CRLF".
  if (proto === 'UNKNOWN') return { value: { version: 1, command: 'proxy', family: 'unspec' }, size };
  if (proto !== 'TCP4' && proto !== 'TCP6') return fail(`v1 protocol "${proto ?? ''}"`);
  if (parts.length !== 5) return fail('v1 line needs four address fields');
  const [, src, dst, sport, dport] = parts as [string, string, string, string, string];
  const valid = proto === 'TCP4' ? isIPv4 : (a: string) => isIPv6(a) && !a.includes('%');
  if (!valid(src) || !valid(dst)) return fail(`v1 ${proto} address`);
  // RFC 5952 text, as v2 and a socket's peer give it (peerText): one spelling per client
  // (`0:0:…:1`, `2001:DB8::7` and `::FFFF:7F00:1` are ::1, 2001:db8::7 and the IPv4 client
  // 127.0.0.1), or limits count it twice and its datagrams, compared with their sender's text,
  // are dropped.
  return {
    value: {
      version: 1,
      command: 'proxy',
      family: proto === 'TCP4' ? 'inet' : 'inet6',
      source: { host: peerText(src), port: v1Port(sport) },
      dest: { host: peerText(dst), port: v1Port(dport) },
    },
    size,
  };
}

/** §2.1: decimal 0..65535 without leading zeroes. */
function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) return fail(`v1 port "${text}"`);
  const port = Number(text);
  return port <= 0xffff ? port : fail(`v1 port ${port}`);
}

const AF_UNSPEC = 0x0;
const AF_INET = 0x1;
const AF_INET6 = 0x2;
const AF_UNIX = 0x3;

// §2.2: signature(12) ver_cmd(1) fam(1) len(2, network order) addresses TLVs
function decodeV2(buf: Buffer): DecodedHeader {
  if (!prefixMatches(buf, V2_SIGNATURE)) return fail('not a v2 header');
  if (buf.length < 16) return NEED_DATA;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) fail(`v2 version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) fail(`v2 command ${cmd}`);
  const af = buf[13]! >> 4;
  const transport = buf[13]! & 0x0f;
  if (af > AF_UNIX || transport > 2) fail(`v2 family byte 0x${buf[13]!.toString(16)}`);
  const size = 16 + buf.readUInt16BE(14);
  if (size > V2_MAX_LENGTH) fail(`v2 header of ${size} bytes (max ${V2_MAX_LENGTH})`);
  if (buf.length < size) return NEED_DATA;
  // LOCAL: "the receiver must accept this connection as valid and must use the real
  // connection endpoints and discard the protocol block including the family".
  if (cmd === 0) return { value: { version: 2, command: 'local', family: 'unspec' }, size };
  // Transport UNSPEC: "The receiver should ignore address information", whatever the family.
  if (af === AF_UNSPEC || transport === 0) return { value: { version: 2, command: 'proxy', family: 'unspec' }, size };
  // The rest of the block past the addresses is TLVs: nothing here needs them.
  if (af === AF_INET) return v2Addresses(buf, size, 4, 'inet');
  if (af === AF_INET6) return v2Addresses(buf, size, 16, 'inet6');
  // AF_UNIX: "The addresses are exactly 108 bytes each"; the peer stays the client, but a
  // block too short for them is as malformed as a short AF_INET one.
  if (size < 16 + 2 * 108) fail(`v2 unix block of ${size - 16} bytes`);
  return { value: { version: 2, command: 'proxy', family: 'unspec' }, size };
}

function v2Addresses(buf: Buffer, size: number, len: 4 | 16, family: 'inet' | 'inet6'): DecodedHeader {
  if (size < 16 + 2 * len + 4) return fail(`v2 ${family} block of ${size - 16} bytes`);
  const text = (off: number): string => (len === 4 ? `${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}` : ipv6ToText(buf, off));
  const ports = 16 + 2 * len;
  return {
    value: {
      version: 2,
      command: 'proxy',
      family,
      source: { host: text(16), port: buf.readUInt16BE(ports) },
      dest: { host: text(16 + len), port: buf.readUInt16BE(ports + 2) },
    },
    size,
  };
}

/** Encoders for tests and tools: what a load balancer would send. */
export function encodeProxyV1(h: { family: 'inet' | 'inet6'; source: Address; dest: Address } | { family: 'unspec' }): Buffer {
  if (h.family === 'unspec') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const proto = h.family === 'inet' ? 'TCP4' : 'TCP6';
  return Buffer.from(`PROXY ${proto} ${h.source.host} ${h.dest.host} ${h.source.port} ${h.dest.port}\r\n`, 'latin1');
}

export function encodeProxyV2(
  h: { command: 'local' } | { command: 'proxy'; family: 'inet' | 'inet6'; source: Address; dest: Address },
  tlvs: Buffer = Buffer.alloc(0),
): Buffer {
  if (h.command === 'local') return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, tlvs.length >> 8, tlvs.length & 0xff]), tlvs]);
  const addr = (host: string): Buffer => (h.family === 'inet' ? Buffer.from(host.split('.').map(Number)) : ipv6ToBytes(host));
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(h.source.port, 0);
  ports.writeUInt16BE(h.dest.port, 2);
  const block = Buffer.concat([addr(h.source.host), addr(h.dest.host), ports, tlvs]);
  const head = Buffer.from([0x21, h.family === 'inet' ? 0x11 : 0x21, block.length >> 8, block.length & 0xff]);
  return Buffer.concat([V2_SIGNATURE, head, block]);
}
