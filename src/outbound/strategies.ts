// How a pool chooses among its usable members. Pure: no I/O, and the clock only as the
// caller passes it. A strategy is built once per member list (the pool's, or the members
// a tag filter leaves), so per-member hashes and weights are computed at build, not per pick.

import type { PoolStrategy } from '../config/types.js';
import { sticky } from './rendezvous.js';

export type { Pickable, Strategy } from './pickable.js';
import type { Pickable, Strategy } from './pickable.js';

// The hashes live with the sticky strategy; pools and tests reach them through here too.
export { fnv1a32, memberHash, sessionPeriod } from './rendezvous.js';

/** Where a rotation over `n` members starts: a pool's picks so far, so a new one goes on rather than back to the first. */
const startAt = (start: number, n: number): number => (n > 0 ? start % n : 0);

function roundRobin<T extends Pickable>(members: readonly T[], start: number): Strategy<T> {
  let cursor = startAt(start, members.length);
  return {
    choose(usable, _key, _lifetime, _now, commit) {
      const n = members.length;
      for (let i = 0; i < n; i++) {
        const idx = (cursor + i) % n;
        const m = members[idx]!;
        if (!usable(m)) continue;
        if (commit) cursor = (idx + 1) % n;
        return m;
      }
      return undefined;
    },
  };
}

/** Weighted: a member is drawn with probability weight / (sum of usable weights). */
function random<T extends Pickable>(members: readonly T[]): Strategy<T> {
  const cumulative = new Float64Array(members.length);
  let total = 0;
  members.forEach((m, i) => (cumulative[i] = total += m.weight));
  const at = (r: number): T => {
    let lo = 0;
    let hi = members.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cumulative[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return members[lo]!;
  };
  return {
    choose(usable) {
      // Usually most members are usable: a few draws (rejection keeps them weighted), then an exact pass.
      for (let i = 0; i < 4 && members.length > 0; i++) {
        const m = at(Math.random() * total);
        if (usable(m)) return m;
      }
      let sum = 0;
      for (const m of members) if (usable(m)) sum += m.weight;
      let r = Math.random() * sum;
      let last: T | undefined;
      for (const m of members) {
        if (!usable(m)) continue;
        last = m;
        r -= m.weight;
        if (r < 0) return m;
      }
      return last;
    },
  };
}

function leastConnections<T extends Pickable>(members: readonly T[], start: number): Strategy<T> {
  // Ties go round the list, so idle members share the work instead of the first taking it all.
  let offset = startAt(start, members.length);
  return {
    choose(usable, _key, _lifetime, _now, commit) {
      const n = members.length;
      let best: T | undefined;
      let bestIdx = 0;
      let bestLoad = Infinity;
      for (let i = 0; i < n; i++) {
        const idx = (offset + i) % n;
        const m = members[idx]!;
        if (!usable(m)) continue;
        const load = m.load();
        if (load < bestLoad) {
          best = m;
          bestIdx = idx;
          bestLoad = load;
          if (load === 0) break;
        }
      }
      if (best && commit) offset = (bestIdx + 1) % n;
      return best;
    },
  };
}

function failover<T extends Pickable>(members: readonly T[]): Strategy<T> {
  return { choose: (usable) => members.find(usable) };
}

/** Latencies this close to the lowest count as a tie: 1 ms, or 10 % of the lowest. */
const TIE_MS = 1;
const TIE_RATIO = 0.1;
/**
 * A latency measured longer ago than this is not recent: a member outside the tie that no
 * request has tried and no health check has measured for this long gets one (its answer
 * replaces the old figure), so a member that was slow once is not left out for good when
 * nothing else measures it. A figure the health checks keep fresh needs no request to check it.
 */
export const FASTEST_STALE_MS = 30_000;

/**
 * The lowest recent connect latency. A member never tried is tried first (it cannot be judged
 * before it is probed); one tried but never measured (every connect through it failed or was
 * refused) comes after every measured one, or it would be first again on every request.
 * Members within a tie of the lowest take turns; one outside it (a slow figure, or none) is
 * tried again once neither a request nor a health check has told of it for FASTEST_STALE_MS:
 * a connect that failed once must not leave a member out for good.
 */
function fastest<T extends Pickable>(members: readonly T[], start: number): Strategy<T> {
  let cursor = startAt(start, members.length);
  return {
    choose(usable, _key, _lifetime, now, commit) {
      const n = members.length;
      let lowest = Infinity;
      let unmeasured: number | undefined;
      for (let i = 0; i < n; i++) {
        const idx = (cursor + i) % n;
        const m = members[idx]!;
        if (!usable(m)) continue;
        const latency = m.latency;
        if (latency === undefined) {
          if (m.attempts > 0) {
            unmeasured ??= idx;
            continue;
          }
          if (commit) cursor = (idx + 1) % n;
          return m;
        }
        if (latency < lowest) lowest = latency;
      }
      if (lowest === Infinity) {
        if (unmeasured === undefined) return undefined;
        if (commit) cursor = (unmeasured + 1) % n;
        return members[unmeasured];
      }
      const limit = lowest + Math.max(TIE_MS, lowest * TIE_RATIO);
      let tie: number | undefined;
      for (let i = 0; i < n; i++) {
        const idx = (cursor + i) % n;
        const m = members[idx]!;
        const latency = m.latency;
        if (!usable(m)) continue;
        if (latency !== undefined && latency <= limit) {
          tie ??= idx;
          if (!commit) break;
        } else if (commit && now - Math.max(m.triedAt, m.measuredAt) >= FASTEST_STALE_MS) {
          // Stale: neither a request nor a health check has told anything of it lately.
          cursor = (idx + 1) % n;
          return m;
        }
      }
      if (tie === undefined) return undefined;
      if (commit) cursor = (tie + 1) % n;
      return members[tie];
    },
  };
}

const FACTORIES: { readonly [K in PoolStrategy]: <T extends Pickable>(members: readonly T[], start: number) => Strategy<T> } = {
  'round-robin': roundRobin,
  random,
  'least-connections': leastConnections,
  failover,
  sticky,
  fastest,
};

/** `start`: where a rotation begins (the pool's picks so far); strategies without one ignore it. */
export function createStrategy<T extends Pickable>(kind: PoolStrategy, members: readonly T[], start = 0): Strategy<T> {
  return FACTORIES[kind](members, start);
}
