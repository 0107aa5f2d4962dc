// Rendezvous hashing for `sticky` pools: the hashes every instance computes alike, the
// lifetime periods, and the weighted rendezvous strategy itself. Pure: no I/O, no clock.

import type { Pickable, Strategy } from './pickable.js';

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
 * computes the same period from the same clock, with no shared state. The offset comes from
 * the mixed hash: FNV-1a's top bits barely change with a key's last character, which put 30
 * of the keys K0..K49 within 7 % of the lifetime.
 */
export function sessionPeriod(keyHash: number, lifetime: number, now: number): number {
  const offset = Math.floor((fmix32(keyHash ^ 0x2545f491) / TWO_32) * lifetime);
  return Math.floor((now + offset) / lifetime);
}

/** The key hash for one lifetime period: (key, period) hashed together. */
function periodKeyHash(keyHash: number, period: number): number {
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
 * Weighted rendezvous hashing (Schindelhauer & Schomaker; "weighted HRW"): each member draws
 * u from hash(key, member) and scores -ln(u)/weight; the lowest score wins, so a member wins a
 * share of keys proportional to its weight, and removing one moves only the keys it held.
 * Members are grouped by weight: within a group, a score beats the best so far exactly when u
 * exceeds exp(-best·weight), an integer threshold recomputed only when the best improves.
 * The inner loop is one draw and one integer compare per member.
 * With a lifetime, (key, period) is hashed instead of the key, and consecutive periods pick in
 * the two halves of a per-key split of the members, so every period ends with a move.
 */
/** A class's members on one side of one split: their hashes, and where each is in the class. */
interface Half {
  hashes: Int32Array;
  index: Int32Array;
}

interface WeightClass<T> {
  weight: number;
  members: T[];
  hashes: Int32Array;
  /** Per member, SPLITS coin flips, SPLITS / 32 words a member: bit p says its side in split p. */
  sides: Int32Array;
  /** Split p, side s at [2p + s], built the first time a key needs it. */
  halves: Array<Half | undefined>;
}

/**
 * Lifetimes: a key's two halves are one of SPLITS fixed, independent splits of the members
 * (bit p of each member's side hashes), picked by the key. A scan then draws only the members
 * of the period's half: half the work of testing every member.
 * The halves of one split are unequal by chance (50 ± 5 of 100), and a member's share of keys
 * follows the size of its halves: averaged over 256 splits, shares stay within about 1 % of
 * even (a chi-square test over 1 000 000 keys and 100 members passes). The lists are built as keys first need them (at most
 * 8 bytes a member a split). A member's sides never depend on the others: removing one moves
 * only the keys it held. (A split at the median of the members' draws, as small pools had,
 * depends on every member: removing one of four moved a quarter of the other members' keys.)
 */
const SPLITS = 256;
const WORDS = SPLITS / 32;
/** Two members split exactly, one on each side: a coin flip would leave half the keys one-sided. */
const EXACT_SPLIT = 2;

/** A member's SPLITS coin flips, WORDS words from its hash. */
function sideWords(hashes: Int32Array): Int32Array {
  const words = new Int32Array(hashes.length * WORDS);
  for (let i = 0; i < hashes.length; i++) for (let w = 0; w < WORDS; w++) words[i * WORDS + w] = fmix32(hashes[i]! ^ Math.imul(w + 1, 0x27d4eb2f)) | 0;
  return words;
}

/** Member i's side (0 or 1) in split p. */
const sideIn = (sides: Int32Array, i: number, p: number): number => (sides[i * WORDS + (p >>> 5)]! >>> (p & 31)) & 1;

function halfOf<T>(c: WeightClass<T>, split: number, side: number): Half {
  const slot = 2 * split + side;
  let half = c.halves[slot];
  if (!half) {
    const index: number[] = [];
    for (let i = 0; i < c.hashes.length; i++) if (sideIn(c.sides, i, split) === side) index.push(i);
    half = { index: Int32Array.from(index), hashes: Int32Array.from(index, (i) => c.hashes[i]!) };
    c.halves[slot] = half;
  }
  return half;
}

export function sticky<T extends Pickable>(members: readonly T[]): Strategy<T> {
  const byWeight = new Map<number, T[]>();
  for (const m of members) {
    const same = byWeight.get(m.weight);
    if (same) same.push(m);
    else byWeight.set(m.weight, [m]);
  }
  const classes: WeightClass<T>[] = [...byWeight].map(([weight, ms]) => {
    const hashes = Int32Array.from(ms, (m) => m.hash | 0);
    return { weight, members: ms, hashes, sides: sideWords(hashes), halves: new Array<Half | undefined>(2 * SPLITS) };
  });
  const total = members.length;
  const scratch = new Int32Array(total <= EXACT_SPLIT ? total : 0);

  /**
   * The best-scoring member, usable or not: one draw and one compare per member. `side` -1
   * takes every member; 0 or 1 only those on that side of `split` (large pools only).
   */
  function top(keyHash: number, split: number, side: number): T | undefined {
    let winner: T | undefined;
    let score = Infinity;
    for (const c of classes) {
      const first = score === Infinity;
      const floor = first ? 0 : floorFor(score, c.weight);
      const half = side === -1 ? undefined : halfOf(c, split, side);
      const hashes = half ? half.hashes : c.hashes;
      const at = scan(hashes, keyHash | 0, floor, first);
      if (at === -1 || hashes.length === 0) continue;
      const s = scoreOf(scanned, c.weight);
      if (s < score) {
        score = s;
        winner = c.members[half ? half.index[at]! : at];
      }
    }
    return winner;
  }

  /** Small pools: the draw at the median of a per-key draw over the members; at or above it is side 1. */
  function medianAt(sideKey: number): number {
    let n = 0;
    for (const c of classes) for (let i = 0; i < c.hashes.length; i++) scratch[n++] = sideDraw(sideKey ^ c.hashes[i]!);
    scratch.sort();
    return scratch[total >> 1]!;
  }

  /** Which side of the key's split member i of class c is on. */
  type SideOf = (c: WeightClass<T>, i: number) => number;

  /** The best-scoring member `usable` accepts (the slow path, and small pools with a lifetime), on `side` of `sideOf` unless -1. */
  function bestUsable(keyHash: number, usable: (m: T) => boolean, sideOf: SideOf | undefined, side: number): T | undefined {
    let winner: T | undefined;
    let score = Infinity;
    for (const c of classes) {
      for (let i = 0; i < c.hashes.length; i++) {
        if (sideOf && sideOf(c, i) !== side) continue;
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

  function best(keyHash: number, usable: (m: T) => boolean, split: number, side: number): T | undefined {
    const first = top(keyHash, split, side);
    if (first === undefined || usable(first)) return first;
    return bestUsable(keyHash, usable, side === -1 ? undefined : (c, i) => sideIn(c.sides, i, split), side);
  }

  /** Whether `side` of `split` holds no member at all (usable or not): every member is on the other side. */
  function emptySide(split: number, side: number): boolean {
    for (const c of classes) if (halfOf(c, split, side).hashes.length > 0) return false;
    return true;
  }

  /**
   * One lifetime period's pick in the half the period is on; a half with no usable member leaves it to all.
   * A split that leaves the period's half empty (all of a small pool's members drew one side)
   * takes the best member other than the neighbouring periods' (whose half holds every member,
   * so they pick among all): the session still moves at both ends of the period, and no other
   * member's side changes what it picks.
   */
  function inHalf(keyHash: number, period: number, periodHash: number, usable: (m: T) => boolean, sideKey: number, side: number): T | undefined {
    if (total > EXACT_SPLIT) {
      const split = sideKey >>> 24;
      if (!emptySide(split, side)) return best(periodHash, usable, split, side);
      const before = top(periodKeyHash(keyHash, period - 1), 0, -1);
      const after = top(periodKeyHash(keyHash, period + 1), 0, -1);
      return bestUsable(periodHash, (m) => m !== before && m !== after && usable(m), undefined, -1) ?? bestUsable(periodHash, (m) => m !== before && usable(m), undefined, -1);
    }
    const median = medianAt(sideKey);
    return bestUsable(periodHash, usable, (c, i) => (sideDraw(sideKey ^ c.hashes[i]!) >= median ? 1 : 0), side);
  }

  return {
    choose(usable, key, lifetime, now) {
      const keyHash = fnv1a32(key);
      if (!lifetime) return best(keyHash, usable, 0, -1);
      // Each key splits the members in two halves; even periods pick in one, odd periods in the
      // other, so at the end of every lifetime the session moves to another member, with no
      // memory of the period before. A half with no usable member leaves the choice to all.
      const period = sessionPeriod(keyHash, lifetime, now);
      const periodHash = periodKeyHash(keyHash, period);
      const sideKey = fmix32(keyHash ^ 0x5bd1e995);
      // The key's own bit turns which half comes first: at any instant the keys in odd periods are
      // not half of all (it depends on where the clock is in the lifetime), so parity alone would
      // load one half of every split more than the other.
      return inHalf(keyHash, period, periodHash, usable, sideKey, (period ^ sideKey) & 1) ?? best(periodHash, usable, 0, -1);
    },
  };
}

