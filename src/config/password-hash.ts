// The `password_hash` format, "scrypt$N$r$p$saltB64$hashB64", shared by the config checks
// and the authenticator (src/server/auth.ts) so both agree on what is acceptable.

export interface ScryptHash {
  N: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

/** Work factors beyond these would let one login pin a CPU or gigabytes of memory. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;
const MAX_MEMORY = 256 * 1024 * 1024; // 128·N·r bytes per scrypt call
/** N·r·p of the hashes `hash-password` prints (N=2^15, r=8, p=1): about 0.1 s on one core. */
const HASH_PASSWORD_WORK = 2 ** 18;
/**
 * Every login runs each cost in use (src/server/auth.ts), two at a time for the process: past
 * 16 times hash-password's work (about 1.5 s), the largest memory with p = 16 took 10 s, the
 * whole handshake_timeout, and no login at all got through.
 */
const MAX_WORK_FACTOR = 16;
const MIN_HASH_BYTES = 16;

/** What parsePasswordHash says of text that is not six `$`-separated fields (the schema's pattern says it too). */
export const HASH_SHAPE = 'must read scrypt$N$r$p$salt$hash';

/** The parsed hash, or a string saying what is wrong with it. */
export function parsePasswordHash(text: string): ScryptHash | string {
  const parts = text.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return HASH_SHAPE;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  if (!Number.isSafeInteger(N) || N < 2 || N > MAX_N || (N & (N - 1)) !== 0) {
    return `scrypt N must be a power of two between 2 and ${MAX_N}`;
  }
  if (!Number.isSafeInteger(r) || r < 1 || r > MAX_R) return `scrypt r must be between 1 and ${MAX_R}`;
  if (!Number.isSafeInteger(p) || p < 1 || p > MAX_P) return `scrypt p must be between 1 and ${MAX_P}`;
  if (128 * N * r > MAX_MEMORY) return `scrypt N·r needs ${(128 * N * r) / 2 ** 20} MiB per login; at most ${MAX_MEMORY / 2 ** 20} MiB is allowed`;
  const work = (N * r * p) / HASH_PASSWORD_WORK;
  if (work > MAX_WORK_FACTOR) return `scrypt N·r·p is ${work} times the work of a hash-password hash; at most ${MAX_WORK_FACTOR} times is allowed`;
  const salt = Buffer.from(parts[4]!, 'base64');
  const hash = Buffer.from(parts[5]!, 'base64');
  if (salt.length === 0) return 'scrypt salt is empty';
  if (hash.length < MIN_HASH_BYTES) return `scrypt hash must be at least ${MIN_HASH_BYTES} bytes`;
  return { N, r, p, salt, hash };
}

/** Memory node:crypto must be allowed for these parameters (its default cap is 32 MiB). */
export function scryptMaxmem(h: Pick<ScryptHash, 'N' | 'r' | 'p'>): number {
  return 128 * h.N * h.r * 2 + 1024 * 1024;
}
