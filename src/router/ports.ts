// Destination ports as a 65 536-bit bitmap (8 KiB): one array read per decision.

import { parsePortEntry, type PortRange } from '../config/ports.js';

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
