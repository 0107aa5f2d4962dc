// A set of IPv4 and IPv6 networks as sorted, merged, disjoint ranges: a lookup is one
// binary search (≤ 17 steps at 100 000 networks), compiling is one typed-array sort.

import { isMapped, parseIp, type ParsedIp } from '../config/ip.js';
import { parseCidr, wordMask, type Cidr } from '../config/cidr.js';

export class CidrSetBuilder {
  // start * 64 + prefix stays below 2^38: exact in a double, and sortable as one number.
  readonly #v4: number[] = [];
  readonly #v6: Cidr[] = [];

  add(c: Cidr): void {
    if (c.v === 4) {
      this.#v4.push(c.start * 64 + c.prefix);
      return;
    }
    this.#v6.push(c);
    // A network inside ::ffff:0:0/96 is an IPv4 network written as IPv6, and IPv4 addresses
    // (mapped ones too, see parseIp) are looked up in the IPv4 table: give it the same range.
    // A wider IPv6 network (::/0, ::/64) holds IPv6 addresses only, as Go's net.IPNet (Clash,
    // glider) reads it: "all IPv6" must not take IPv4 traffic.
    if (c.prefix >= 96 && isMapped(c.w)) this.#v4.push(c.w[3]! * 64 + (c.prefix - 96));
  }

  get size(): number {
    return this.#v4.length + this.#v6.length;
  }

  build(): CidrSet {
    return new CidrSet(build4(this.#v4), build6(this.#v6));
  }
}

interface Table4 {
  starts: Uint32Array;
  ends: Uint32Array;
}

function build4(keys: number[]): Table4 {
  const sorted = Float64Array.from(keys).sort();
  const starts: number[] = [];
  const ends: number[] = [];
  for (const key of sorted) {
    const prefix = key % 64;
    const start = (key - prefix) / 64;
    const end = start + 2 ** (32 - prefix) - 1;
    const last = ends.length - 1;
    if (last >= 0 && start <= ends[last]! + 1) {
      if (end > ends[last]!) ends[last] = end;
    } else {
      starts.push(start);
      ends.push(end);
    }
  }
  return { starts: Uint32Array.from(starts), ends: Uint32Array.from(ends) };
}

interface Table6 {
  starts: Uint32Array; // 4 words per range
  ends: Uint32Array;
  count: number;
}

function build6(nets: Cidr[]): Table6 {
  const n = nets.length;
  const rawStart = new Uint32Array(n * 4);
  const rawEnd = new Uint32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const c = nets[i]! as Cidr & { v: 6 };
    for (let k = 0; k < 4; k++) {
      rawStart[i * 4 + k] = c.w[k]!;
      rawEnd[i * 4 + k] = (c.w[k]! | ~wordMask(c.prefix - 32 * k)) >>> 0;
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => cmp(rawStart, a, rawStart, b));
  const starts = new Uint32Array(n * 4);
  const ends = new Uint32Array(n * 4);
  let count = 0;
  for (const i of order) {
    // Ranges from prefixes either nest or are disjoint; merge only overlaps (adjacent ones stay
    // separate, which is still correct for the search).
    if (count > 0 && cmp(rawStart, i, ends, count - 1) <= 0) {
      if (cmp(rawEnd, i, ends, count - 1) > 0) ends.set(rawEnd.subarray(i * 4, i * 4 + 4), (count - 1) * 4);
      continue;
    }
    starts.set(rawStart.subarray(i * 4, i * 4 + 4), count * 4);
    ends.set(rawEnd.subarray(i * 4, i * 4 + 4), count * 4);
    count++;
  }
  return { starts: starts.slice(0, count * 4), ends: ends.slice(0, count * 4), count };
}

function cmp(a: Uint32Array, i: number, b: Uint32Array, j: number): number {
  for (let k = 0; k < 4; k++) {
    const d = a[i * 4 + k]! - b[j * 4 + k]!;
    if (d !== 0) return d;
  }
  return 0;
}

function cmpWords(a: Uint32Array, i: number, w: Uint32Array): number {
  for (let k = 0; k < 4; k++) {
    const d = a[i * 4 + k]! - w[k]!;
    if (d !== 0) return d;
  }
  return 0;
}

/** Immutable; built by CidrSetBuilder. */
export class CidrSet {
  readonly #v4: Table4;
  readonly #v6: Table6;

  constructor(v4: Table4, v6: Table6) {
    this.#v4 = v4;
    this.#v6 = v6;
  }

  /** Number of disjoint ranges after merging. */
  get ranges(): number {
    return this.#v4.starts.length + this.#v6.count;
  }

  has(ip: ParsedIp): boolean {
    return ip.v === 4 ? this.#has4(ip.n) : this.#has6(ip.w);
  }

  /** Convenience for IP text; false for anything that is not an address. */
  hasText(text: string): boolean {
    const ip = parseIp(text);
    return ip !== undefined && this.has(ip);
  }

  #has4(n: number): boolean {
    const { starts, ends } = this.#v4;
    let lo = 0;
    let hi = starts.length - 1;
    // Last range whose start ≤ n; ranges are disjoint, so it is the only candidate.
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (starts[mid]! <= n) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && n <= ends[hi]!;
  }

  #has6(w: Uint32Array): boolean {
    const { starts, ends, count } = this.#v6;
    let lo = 0;
    let hi = count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (cmpWords(starts, mid, w) <= 0) lo = mid + 1;
      else hi = mid - 1;
    }
    return hi >= 0 && cmpWords(ends, hi, w) >= 0;
  }
}

/** Compiles a list of CIDR texts; throws on the first invalid one (entries are pre-validated). */
export function cidrSetOf(entries: readonly string[]): CidrSet {
  const b = new CidrSetBuilder();
  for (const e of entries) {
    const c = parseCidr(e);
    if (typeof c === 'string') throw new TypeError(c);
    b.add(c);
  }
  return b.build();
}
