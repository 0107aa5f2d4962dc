// CIDR notation (`a.b.c.d/n`, `x::y/n`, a bare address) as the config writes it, parsed
// to a network with its host bits masked off; the router compiles these into range tables.

import { parseIPv4, parseIPv6 } from './ip.js';

export type Cidr = { readonly v: 4; readonly start: number; readonly prefix: number } | { readonly v: 6; readonly w: Uint32Array; readonly prefix: number };

/**
 * `a.b.c.d/n`, `x::y/n`, or a bare address (a host route). Host bits are masked off, as
 * most routers do. Returns the network, or a message saying why the text is not one.
 */
export function parseCidr(text: string): Cidr | string {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseIPv4(addr);
  const max = v4 >= 0 ? 32 : 128;
  const prefix = slash < 0 ? max : parsePrefix(text, slash + 1);
  if (prefix < 0) return `invalid CIDR "${text}": prefix length must be a number`;
  if (prefix > max) return `invalid CIDR "${text}": prefix length ${prefix} is over ${max}`;
  if (v4 >= 0) return { v: 4, start: mask4(v4, prefix), prefix };
  const w = addr.includes(':') ? parseIPv6(addr) : undefined;
  if (w === undefined) return `invalid CIDR "${text}": not an IPv4 or IPv6 address`;
  if (addr.includes('%')) return `invalid CIDR "${text}": a zone has no place in a network`;
  for (let i = 0; i < 4; i++) w[i] = (w[i]! & wordMask(prefix - 32 * i)) >>> 0;
  return { v: 6, w, prefix };
}

/** Decimal digits from `from` to the end (1 to 3 of them), or -1. */
function parsePrefix(text: string, from: number): number {
  const len = text.length - from;
  if (len < 1 || len > 3) return -1;
  let v = 0;
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v;
}

/** The mask of a 32-bit word holding `bits` prefix bits (0–32, clamped). */
export function wordMask(bits: number): number {
  if (bits <= 0) return 0;
  if (bits >= 32) return 0xffffffff;
  return (0xffffffff << (32 - bits)) >>> 0;
}

function mask4(n: number, prefix: number): number {
  return (n & wordMask(prefix)) >>> 0;
}
