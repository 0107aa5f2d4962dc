// The egress guard (PRODUCT.md "Egress guard"): the addresses `direct` may not dial unless
// the rule that chose it names them in its own `cidrs`. Checked on the address actually
// dialed, after resolution, so a name cannot be re-resolved to something else in between
// (no DNS-rebinding window). Compiled once per config into one CIDR set.

import { EGRESS_NAMES } from '../config/types.js';
import { GatewayError, Rep } from '../errors.js';
import { parseCidr } from '../config/cidr.js';
import { CidrSetBuilder } from '../router/cidrs.js';
import { isMapped, loopbackOfUnspecified, parseIPv4, parseIPv6, parseIp, type ParsedIp } from '../config/ip.js';

type EgressName = (typeof EGRESS_NAMES)[number];

/** What each name of `egress.deny` stands for. */
export const EGRESS_RANGES: Readonly<Record<EgressName, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'],
  'link-local': ['169.254.0.0/16', 'fe80::/10'],
  // AWS/GCP/Azure/OpenStack (169.254.169.254), Alibaba (100.100.100.200), and the IPv6 servers
  // of AWS (fd00:ec2::254) and Google Cloud (fd20:ce::254), which no other name here holds on loopback listeners.
  metadata: ['169.254.169.254/32', '100.100.100.200/32', 'fd00:ec2::254/128', 'fd20:ce::254/128'],
  unspecified: ['0.0.0.0/8', '::/128'],
};

/** Refused by the guard: the client gets 0x02 (HTTP 403), like a `block` rule. */
export class EgressDeniedError extends GatewayError {
  readonly address: string;
  constructor(address: string) {
    super('GW_ERR_EGRESS_DENIED', 'egress denied', Rep.NOT_ALLOWED);
    this.address = address;
  }
}

/** A rule's own destination networks: an explicit route into them lifts the guard. */
export interface AddressSet {
  has(ip: ParsedIp): boolean;
}

export interface EgressGuard {
  /** True when `address` (an IP literal) may not be dialed; `lift` is the deciding rule's `cidrs`. */
  denies(address: string, lift?: AddressSet): boolean;
  /** Counts one refusal (a metric); `command` is connect, http or udp. */
  denied(command: string): void;
}

/** No guard at all (`egress: { deny: [] }`). */
export const OPEN_EGRESS: EgressGuard = { denies: () => false, denied: () => {} };

/**
 * Compiles `egress.deny` (names and CIDRs, validated by the config loader).
 * `onDenied` is called once per refusal, for the metrics.
 */
export function compileEgress(deny: readonly string[], onDenied: (command: string) => void = () => {}): EgressGuard {
  if (deny.length === 0) return OPEN_EGRESS;
  const b = new CidrSetBuilder();
  for (const entry of deny) {
    for (const text of (EGRESS_RANGES as Record<string, readonly string[]>)[entry] ?? [entry]) {
      const c = parseCidr(text);
      if (typeof c === 'string') throw new TypeError(c); // the loader validated every entry
      b.add(c);
    }
  }
  const set = b.build();
  return {
    denies(address, lift) {
      const ips = addressForms(address);
      // Not an address at all: dialing it would need a lookup, which `direct` never does here.
      if (ips.length === 0) return true;
      // The rule's cidrs see the address as the router did (IPv4-mapped as IPv4, nothing else unwrapped).
      const plain = lift && parseIp(address);
      if (plain && lift.has(plain)) return false;
      return ips.some((ip) => set.has(ip));
    },
    denied: onDenied,
  };
}

/**
 * The address as parsed, then the IPv4 address an IPv6 one carries, if any: IPv4-compatible
 * `::a.b.c.d` (RFC 4291 §2.5.5.1) and NAT64 `64:ff9b::a.b.c.d` (RFC 6052 §2.1) reach that IPv4
 * host through a translator. IPv4-mapped `::ffff:a.b.c.d` (§2.5.5.2) is dialed as that IPv4
 * address and is only IPv4 here, as to the router (an IPv6 network such as ::/0 does not hold
 * it). `::` and `::1` are not read as IPv4-compatible: they are the unspecified and loopback
 * addresses (0.0.0.0/8 is never a real IPv4 host). The unspecified address, and its mapped
 * form, also yield the loopback address it reaches.
 */
export function addressForms(text: string): ParsedIp[] {
  const v4 = parseIPv4(text);
  if (v4 >= 0) return ipv4Forms(v4);
  const host = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  if (!host.includes(':')) return [];
  const w = parseIPv6(host);
  if (w === undefined) return [];
  // Dialed, the unspecified address is this host: a guard that denies loopback denies it too.
  if (w.every((x) => x === 0)) return [{ v: 6, w }, loopbackOfUnspecified({ v: 6, w })!];
  const embedded = embeddedIPv4(w);
  if (embedded === undefined) return [{ v: 6, w }];
  return isMapped(w) ? ipv4Forms(embedded) : [{ v: 4, n: embedded }, { v: 6, w }];
}

/** 0.0.0.0 dialed is this host: loopback too. */
function ipv4Forms(n: number): ParsedIp[] {
  const ip: ParsedIp = { v: 4, n };
  const loopback = loopbackOfUnspecified(ip);
  return loopback ? [ip, loopback] : [ip];
}

function embeddedIPv4(w: Uint32Array): number | undefined {
  const last = w[3]!;
  if (w[1] !== 0 || w[2] === undefined) return undefined;
  if (w[0] === 0 && w[2] === 0xffff) return last; // mapped
  if (w[0] === 0 && w[2] === 0 && last >= 0x01000000) return last; // compatible
  if (w[0] === 0x0064ff9b && w[2] === 0) return last; // NAT64 well-known prefix
  return undefined;
}
