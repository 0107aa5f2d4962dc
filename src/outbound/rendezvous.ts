// Rendezvous hashing for `sticky` pools: the hashes every instance computes alike, the
// lifetime periods, and the weighted rendezvous strategy itself. Pure: no I/O, no clock.

import type { Pickable, Strategy } from './strategies.js';

/** FNV-1a over UTF-16 code units: the same on every instance, fast enough for 1000 members a pick. */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3's finalizer: spreads every input bit over the output. */
function fmix32(x: number): number {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * The per-pair draw of `key ^ member`, as a signed 32-bit integer (higher wins). Both halves
 * are spread already, so this is fmix32 without its last xorshift: that step only stirs the
 * low 16 bits, which decide an order only on a tie of the top 16. Signed, so V8 keeps draws
 * in registers instead of boxing values above 2^31. One round (a single multiply) is cheaper
 * but measurably uneven: its shares of keys per member fail a chi-square test that this passes.
 */
function draw(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  return Math.imul(x, 0xc2b2ae35);
}

/**
 * What splits the members in two for one key: only which half a member is in, never an
 * order among them, so one multiply does (its top bits depend on every bit of `x`; each
 * member is in each half for half of the keys, and each key's halves are about equal).
 */
function sideDraw(x: number): number {
  return Math.imul(x, 0x9e3779b1);
}

/** (key, member) → 32 uniform bits, higher wins: rendezvous hashing's per-pair draw. */
export function rendezvousScore(keyHash: number, memberHash: number): number {
  return (draw(keyHash ^ memberHash) ^ MIN) >>> 0;
}

/** A member's half of the score, computed once when the pool is built. */
export function memberHash(name: string): number {
  return fmix32(fnv1a32(name));
}

const TWO_32 = 2 ** 32;
const TWO_31 = 2 ** 31;
/** The lowest signed 32-bit integer: the lowest draw, and the sign bit alone. */
const MIN = -TWO_31 | 0;

/**
 * The lifetime period a session is in at `now`. Each key's periods are shifted by an offset
 * derived from the key, so sessions do not all move at the same instant; every instance
 * computes the same period from the same clock, with no shared state.
 */
export function sessionPeriod(keyHash: number, lifetime: number, now: number): number {
  const offset = Math.floor((keyHash / TWO_32) * lifetime);
  return Math.floor((now + offset) / lifetime);
}

/** The key hash for one lifetime period: (key, period) hashed together. */
export function periodKeyHash(keyHash: number, period: number): number {
  const hi = Math.floor(period / TWO_32);
  return fmix32(keyHash ^ fmix32((period >>> 0) ^ fmix32(hi + 0x9e3779b9)));
}

/**
 * A draw read as u in (0, 1): (d + 2^31 + 0.5) / 2^32. Within a weight class the highest
 * draw is the best score; a class only has to beat `floor`, the draw that would tie the best
 * score of the classes before it.
 */
const floorFor = (best: number, weight: number): number =>
  best === Infinity ? MIN : Math.min(TWO_31 - 1, Math.max(-TWO_31, Math.floor(Math.exp(-best * weight) * TWO_32) - 2 - TWO_31)) | 0;
const scoreOf = (d: number, weight: number): number => -Math.log((d + TWO_31 + 0.5) / TWO_32) / weight;

// The best draw of the last scan (one value, so the scans return a plain index). Module-level
// functions, not closures per strategy: one call target, so V8 inlines them into every pool.
let scanned = 0;

/**
 * Member hash `m` ranked within the key's side: the top bit is 1 when `m` is off the side,
 * the other 31 bits are the draw's top 31 (in unsigned order). Every member on the side
 * outranks all off it, so one compare a member does both tests, branch-free: the side is a
 * coin flip per member, and a branch on it would be mispredicted half the time. `ss` is the
 * side key, with its top bit flipped for side 0: the multiplier being odd, that flips the
 * side draw's sign.
 */
function sided(k: number, m: number, ss: number): number {
  return ((draw(k ^ m) ^ MIN) >>> 1) | (sideDraw(ss ^ m) & MIN);
}

/**
 * Index of the highest draw above `floor` in `hashes` (-1: none); the draw goes to `scanned`.
 * Four members a round: V8's cost per iteration (bounds checks, loop test) exceeds a draw's.
 */
function scan(hashes: Int32Array, k: number, floor: number, first: boolean): number {
  const n = hashes.length;
  const quads = n & ~3;
  let at = first ? 0 : -1; // nothing to beat yet: the first member is the one to beat (a draw of MIN included)
  let f = first ? MIN : floor;
  let i = 0;
  for (; i < quads; i += 4) {
    const d0 = draw(k ^ hashes[i]!), d1 = draw(k ^ hashes[i + 1]!), d2 = draw(k ^ hashes[i + 2]!), d3 = draw(k ^ hashes[i + 3]!);
    if (d0 > f) (f = d0), (at = i);
    if (d1 > f) (f = d1), (at = i + 1);
    if (d2 > f) (f = d2), (at = i + 2);
    if (d3 > f) (f = d3), (at = i + 3);
  }
  for (; i < n; i++) {
    const d = draw(k ^ hashes[i]!);
    if (d > f) (f = d), (at = i);
  }
  scanned = f;
  return at;
}

/**
 * `scan` over the members on `side` of the key's split at 0 (side 1: a side draw at or above
 * it). A function of its own: sharing one with `scan` makes V8 stop inlining the draws, which
 * doubles the time of both. Ranks drop the draw's lowest bit, so `floor` is lowered one rank
 * (the scores decide after) and the winner's draw is computed again.
 */
function scanSide(hashes: Int32Array, k: number, floor: number, first: boolean, sk: number, side: number): number {
  const ss = side === 1 ? sk : sk ^ MIN;
  const n = hashes.length;
  const quads = n & ~3;
  let at = -1;
  let f = first ? -1 : ((floor ^ MIN) >>> 1) - 1; // off the side ranks below -1
  let i = 0;
  for (; i < quads; i += 4) {
    const r0 = sided(k, hashes[i]!, ss), r1 = sided(k, hashes[i + 1]!, ss);
    const r2 = sided(k, hashes[i + 2]!, ss), r3 = sided(k, hashes[i + 3]!, ss);
    if (r0 > f) (f = r0), (at = i);
    if (r1 > f) (f = r1), (at = i + 1);
    if (r2 > f) (f = r2), (at = i + 2);
    if (r3 > f) (f = r3), (at = i + 3);
  }
  for (; i < n; i++) {
    const r = sided(k, hashes[i]!, ss);
    if (r > f) (f = r), (at = i);
  }
  scanned = at === -1 ? MIN : draw(k ^ hashes[at]!);
  return at;
}

/**
 * Weighted rendezvous hashing (Schindelhauer & Schomaker; "weighted HRW"): each member draws
 * u from hash(key, member) and scores -ln(u)/weight; the lowest score wins, so a member wins a
 * share of keys proportional to its weight, and removing one moves only the keys it held.
 * Members are grouped by weight: within a group, a score beats the best so far exactly when u
 * exceeds exp(-best·weight), an integer threshold recomputed only when the best improves.
 * The inner loop is one draw and one integer compare per member.
 * With a lifetime, (key, period) is hashed instead of the key, and consecutive periods pick in
 * the two halves of a per-key split of the members, so every period ends with a move.
 */
export function sticky<T extends Pickable>(members: readonly T[]): Strategy<T> {
  const byWeight = new Map<number, T[]>();
  for (const m of members) {
    const same = byWeight.get(m.weight);
    if (same) same.push(m);
    else byWeight.set(m.weight, [m]);
  }
  const classes = [...byWeight].map(([weight, ms]) => ({ weight, members: ms, hashes: Int32Array.from(ms, (m) => m.hash | 0) }));

  /**
   * The best-scoring member, usable or not: one hash and one compare per member. `side` -1
   * takes every member; 0 or 1 only those on that side of the key's split (see splitAt).
   */
  function top(keyHash: number, sideKey: number, side: number): T | undefined {
    let winner: T | undefined;
    let score = Infinity;
    for (const c of classes) {
      const first = score === Infinity;
      const floor = first ? 0 : floorFor(score, c.weight);
      const at = side === -1 ? scan(c.hashes, keyHash | 0, floor, first) : scanSide(c.hashes, keyHash | 0, floor, first, sideKey | 0, side);
      if (at === -1 || c.hashes.length === 0) continue;
      const s = scoreOf(scanned, c.weight);
      if (s < score) {
        score = s;
        winner = c.members[at];
      }
    }
    return winner;
  }

  /** Small pools split exactly at the median; large ones at 2^31, balanced enough by chance. */
  const EXACT_SPLIT = 32;
  const total = members.length;
  const scratch = new Int32Array(total <= EXACT_SPLIT ? total : 0);

  /** Draws at or above it are side 1, below it side 0. */
  function splitAt(sideKey: number): number {
    if (total > EXACT_SPLIT) return 0;
    let n = 0;
    for (const c of classes) for (let i = 0; i < c.hashes.length; i++) scratch[n++] = sideDraw(sideKey ^ c.hashes[i]!);
    scratch.sort();
    return scratch[total >> 1]!;
  }

  /**
   * The best-scoring member `usable` accepts (the slow path, and lifetimes). `side` -1 takes
   * every member; 0 or 1 only the members on that side of the key's split.
   */
  function bestUsable(keyHash: number, usable: (m: T) => boolean, sideKey: number, split: number, side: number): T | undefined {
    let winner: T | undefined;
    let score = Infinity;
    for (const c of classes) {
      for (let i = 0; i < c.hashes.length; i++) {
        if (side !== -1 && (sideDraw(sideKey ^ c.hashes[i]!) >= split ? 1 : 0) !== side) continue;
        const m = c.members[i]!;
        const s = scoreOf(draw(keyHash ^ c.hashes[i]!), c.weight);
        // Equal scores go to the lower name, so member order never matters here.
        if (s > score || (s === score && winner !== undefined && m.name > winner.name)) continue;
        if (!usable(m)) continue;
        winner = m;
        score = s;
      }
    }
    return winner;
  }

  function best(keyHash: number, usable: (m: T) => boolean, sideKey: number, split: number, side: number): T | undefined {
    // Small pools split at the median, which scanSide does not take: they go the slow way.
    if (side !== -1 && total <= EXACT_SPLIT) return bestUsable(keyHash, usable, sideKey, split, side);
    const first = top(keyHash, sideKey, side);
    if (first === undefined || usable(first)) return first;
    return bestUsable(keyHash, usable, sideKey, split, side);
  }

  return {
    choose(usable, key, lifetime, now) {
      const keyHash = fnv1a32(key);
      if (!lifetime) return best(keyHash, usable, 0, 0, -1);
      // Each key splits the members in two halves; even periods pick in one, odd periods in the
      // other, so at the end of every lifetime the session moves to another member, with no
      // memory of the period before. A half with no usable member leaves the choice to all.
      const period = sessionPeriod(keyHash, lifetime, now);
      const periodHash = periodKeyHash(keyHash, period);
      const sideKey = fmix32(keyHash ^ 0x5bd1e995);
      const split = splitAt(sideKey);
      return best(periodHash, usable, sideKey, split, period & 1) ?? best(periodHash, usable, 0, 0, -1);
    },
  };
}

