// Durations in the config are strings like "500ms", "10s", "5m", "1h" (the schema's
// `$defs/duration` pattern); the typed Config carries milliseconds.

export const DURATION_PATTERN = '^\\d+(ms|s|m|h)$';

/** The longest wait a Node.js timer can arm (2^31-1 ms, 24.8 days); beyond it one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;
const DURATION_RE = /^(\d+)(ms|s|m|h)$/;

/** Milliseconds in `text`, or undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION_RE.exec(text);
  if (!m) return undefined;
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** Like parseDuration, for values the schema already checked. */
export function durationMs(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new RangeError(`not a duration: ${JSON.stringify(text)}`);
  return ms;
}
