// IP text → numbers for the CIDR tables. IPv4 is one uint32; IPv6 is four uint32 words,
// most significant first. An IPv4-mapped IPv6 address (RFC 4291 §2.5.5.2) is reported as
// the IPv4 address it carries, so `::ffff:10.1.2.3` meets the IPv4 networks.

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

/**
 * IPv6 text (RFC 4291 §2.2: hex groups, one `::`, an optional dotted IPv4 tail) → four words,
 * or undefined when it is not IPv6. A zone (`%eth0`) is ignored. Hand-rolled: list files of
 * 100 000 networks are parsed at every reload.
 */
export function parseIPv6(text: string): Uint32Array | undefined {
  let end = text.indexOf('%');
  if (end < 0) end = text.length;
  else if (end === text.length - 1) return undefined;
  const g = GROUPS;
  let n = 0;
  let gap = -1;
  let i = 0;
  if (text.charCodeAt(0) === 58 /* : */) {
    if (text.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
  }
  while (i < end) {
    let v = 0;
    let j = i;
    for (; j < end; j++) {
      const d = hexValue(text.charCodeAt(j));
      if (d < 0) break;
      if (j - i === 4) return undefined;
      v = v * 16 + d;
    }
    if (j < end && text.charCodeAt(j) === 46 /* . */) {
      const v4 = n <= 6 ? parseIPv4(text.slice(i, end)) : -1;
      if (v4 < 0) return undefined;
      g[n++] = Math.floor(v4 / 0x10000);
      g[n++] = v4 % 0x10000;
      break;
    }
    if (j === i || n === 8) return undefined;
    g[n++] = v;
    if (j === end) break;
    if (text.charCodeAt(j) !== 58) return undefined;
    i = j + 1;
    if (text.charCodeAt(i) === 58) {
      if (gap >= 0) return undefined;
      gap = n;
      i++;
    } else if (i === end) {
      return undefined; // a single trailing ':'
    }
  }
  if (gap < 0 ? n !== 8 : n > 7) return undefined;
  const w = new Uint32Array(4);
  const shift = 8 - n;
  for (let k = 0; k < 8; k++) {
    const src = gap < 0 || k < gap ? k : k - shift;
    const v = gap >= 0 && k >= gap && k < gap + shift ? 0 : g[src]!;
    w[k >>> 1] = w[k >>> 1]! * 0x10000 + v;
  }
  return w;
}

/** Scratch for parseIPv6 (synchronous, so never shared between two calls). */
const GROUPS = new Uint16Array(8);

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** `::ffff:0:0/96` holds IPv4-mapped addresses. */
export function isMapped(w: Uint32Array): boolean {
  return w[0] === 0 && w[1] === 0 && w[2] === 0xffff;
}

const LOOPBACK_V4: ParsedIp = { v: 4, n: 0x7f000001 };
const LOOPBACK_V6: ParsedIp = { v: 6, w: Uint32Array.of(0, 0, 0, 1) };

/**
 * The loopback address a connection or a datagram to `ip` reaches when `ip` is the unspecified
 * address (0.0.0.0, `::`, `::ffff:0.0.0.0`): Linux, as the BSDs do, delivers it to this host.
 * Undefined for any other address.
 */
export function loopbackOfUnspecified(ip: ParsedIp): ParsedIp | undefined {
  if (ip.v === 4) return ip.n === 0 ? LOOPBACK_V4 : undefined;
  return ip.w[0] === 0 && ip.w[1] === 0 && ip.w[2] === 0 && ip.w[3] === 0 ? LOOPBACK_V6 : undefined;
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
