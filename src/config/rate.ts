// Rates in the config are strings like "20MiB/s" (the schema's `$defs/rate` pattern);
// the typed Config carries bytes per second.

export const RATE_PATTERN = '^\\d+(\\.\\d+)?(B|KB|KiB|MB|MiB|GB|GiB)/s$';

const UNIT_BYTES = { B: 1, KB: 1e3, KiB: 1024, MB: 1e6, MiB: 1024 ** 2, GB: 1e9, GiB: 1024 ** 3 } as const;
const RATE_RE = /^(\d+(?:\.\d+)?)(B|KB|KiB|MB|MiB|GB|GiB)\/s$/;

/** Bytes per second in `text` (rounded down, at least 1), or undefined when it is not a rate. */
export function parseRate(text: string): number | undefined {
  const m = RATE_RE.exec(text);
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNIT_BYTES[m[2] as keyof typeof UNIT_BYTES]);
  return Number.isSafeInteger(bytes) && bytes >= 1 ? bytes : undefined;
}

/** Like parseRate, for values the schema and the semantic pass already checked. */
export function rateBytes(text: string): number {
  const bytes = parseRate(text);
  if (bytes === undefined) throw new RangeError(`not a rate: ${JSON.stringify(text)}`);
  return bytes;
}
