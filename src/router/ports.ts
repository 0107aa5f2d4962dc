// Destination ports as a 65 536-bit bitmap (8 KiB): one array read per decision.

export type PortRange = readonly [lo: number, hi: number];

/** `443`, `"443"` or `"8000-8999"` → [lo, hi], or a message saying why it is not a port. */
export function parsePortEntry(entry: number | string): PortRange | string {
  if (typeof entry === 'number') {
    return Number.isInteger(entry) && entry >= 0 && entry <= 65535 ? [entry, entry] : `invalid port ${entry}`;
  }
  const m = /^\s*(\d{1,5})\s*(?:-\s*(\d{1,5})\s*)?$/.exec(entry);
  if (m === null) return `invalid port "${entry}": expected a number or "LO-HI"`;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  if (lo > 65535 || hi > 65535) return `invalid port "${entry}": ports go up to 65535`;
  if (lo > hi) return `invalid port range "${entry}": ${lo} is above ${hi}`;
  return [lo, hi];
}

export class PortSet {
  readonly #bits = new Uint8Array(65536 / 8);

  constructor(ranges: readonly PortRange[]) {
    for (const [lo, hi] of ranges) for (let p = lo; p <= hi; p++) this.#bits[p >>> 3]! |= 1 << (p & 7);
  }

  has(port: number): boolean {
    return ((this.#bits[port >>> 3] ?? 0) & (1 << (port & 7))) !== 0;
  }
}

/** Compiles pre-validated entries; throws on an invalid one. */
export function portSetOf(entries: readonly (number | string)[]): PortSet {
  const ranges: PortRange[] = [];
  for (const e of entries) {
    const r = parsePortEntry(e);
    if (typeof r === 'string') throw new TypeError(r);
    ranges.push(r);
  }
  return new PortSet(ranges);
}
