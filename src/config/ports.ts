// Destination ports as the config writes them: `443`, `"443"`, `"8000-8999"`.

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
