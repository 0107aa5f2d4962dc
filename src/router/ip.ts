// IP text → numbers for the CIDR tables. IPv4 is one uint32; IPv6 is four uint32 words,
// most significant first. An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2) is reported as
// the IPv4 address it carries, so `::ffff:10.1.2.3` meets the IPv4 networks.

import { isIPv6 } from 'node:net';

export type ParsedIp = { readonly v: 4; readonly n: number } | { readonly v: 6; readonly w: Uint32Array };

/** Dotted-quad IPv4 text → uint32, or -1 when `text` is not exactly four decimal octets. */
export function parseIPv4(text: string): number {
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || ++dots > 3) return -1;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return -1; // leading zero: ambiguous (octal in inet_aton)
      octet = octet * 10 + (c - 48);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + octet;
}

/** IPv6 text → four words, or undefined when it is not IPv6. A zone (`%eth0`) is ignored. */
export function parseIPv6(text: string): Uint32Array | undefined {
  if (!isIPv6(text)) return undefined;
  const pct = text.indexOf('%');
  if (pct >= 0) text = text.slice(0, pct);
  const dbl = text.indexOf('::');
  const head = dbl < 0 ? groups(text) : groups(text.slice(0, dbl));
  const tail = dbl < 0 ? [] : groups(text.slice(dbl + 2));
  const halves = new Array<number>(8).fill(0);
  for (let i = 0; i < head.length; i++) halves[i] = head[i]!;
  for (let i = 0; i < tail.length; i++) halves[8 - tail.length + i] = tail[i]!;
  const w = new Uint32Array(4);
  for (let i = 0; i < 4; i++) w[i] = halves[2 * i]! * 0x10000 + halves[2 * i + 1]!;
  return w;
}

function groups(part: string): number[] {
  if (part === '') return [];
  const out: number[] = [];
  for (const g of part.split(':')) {
    if (g.includes('.')) {
      const v4 = parseIPv4(g);
      out.push(Math.floor(v4 / 0x10000), v4 % 0x10000);
    } else {
      out.push(parseInt(g, 16));
    }
  }
  return out;
}

/** `::ffff:0:0/96` holds IPv4-mapped addresses. */
export function isMapped(w: Uint32Array): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

/** Any IP text → ParsedIp (mapped IPv6 becomes IPv4), or undefined for a name. */
export function parseIp(text: string): ParsedIp | undefined {
  const n = parseIPv4(text);
  if (n >= 0) return { v: 4, n };
  if (!text.includes(':')) return undefined;
  const w = parseIPv6(text);
  if (w === undefined) return undefined;
  return isMapped(w) ? { v: 4, n: w[3]! } : { v: 6, w };
}
