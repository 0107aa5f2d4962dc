// How a pool chooses among its usable members. Pure: no I/O, no clock. Each strategy
// scans at most the member list once per choice.

import type { PoolStrategy } from '../config/types.js';

export interface Pickable {
  readonly name: string;
  /** memberHash(name), for rendezvous hashing. */
  readonly hash: number;
  /** Relayed connections open now plus connects in flight. */
  load(): number;
}

export interface Strategy {
  /**
   * The member for `key` among those `usable` accepts. `commit` false asks what would be
   * chosen without moving any cursor (for `socksgate route` and tests).
   */
  choose<T extends Pickable>(members: readonly T[], usable: (m: T) => boolean, key: string, commit: boolean): T | undefined;
}

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
 * Rendezvous (highest random weight) hashing: every member gets a score from (key, name) and the
 * highest usable one wins. Depends only on the names, so every gateway with the same member list
 * agrees; removing a member moves only the keys whose winner it was.
 */
export function rendezvousScore(keyHash: number, memberHash: number): number {
  return fmix32(keyHash ^ memberHash);
}

/** A member's half of the score, computed once when the pool is built. */
export function memberHash(name: string): number {
  return fmix32(fnv1a32(name));
}

function roundRobin(): Strategy {
  let cursor = 0;
  return {
    choose(members, usable, _key, commit) {
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

function random(): Strategy {
  return {
    choose(members, usable) {
      // Usually most members are usable: a few draws, then an exact pass.
      for (let i = 0; i < 4 && members.length > 0; i++) {
        const m = members[Math.floor(Math.random() * members.length)]!;
        if (usable(m)) return m;
      }
      const ok = members.filter(usable);
      return ok[Math.floor(Math.random() * ok.length)];
    },
  };
}

function leastConnections(): Strategy {
  // Ties go round the list, so idle members share the work instead of the first taking it all.
  let offset = 0;
  return {
    choose(members, usable, _key, commit) {
      const n = members.length;
      let best: (typeof members)[number] | undefined;
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

function failover(): Strategy {
  return { choose: (members, usable) => members.find(usable) };
}

function sticky(): Strategy {
  return {
    choose(members, usable, key) {
      const keyHash = fnv1a32(key);
      let best: (typeof members)[number] | undefined;
      let bestScore = -1;
      for (const m of members) {
        const score = rendezvousScore(keyHash, m.hash);
        // Score first: `usable` runs only for the few members that would win so far.
        if (score < bestScore || (score === bestScore && best !== undefined && m.name > best.name)) continue;
        if (!usable(m)) continue;
        best = m;
        bestScore = score;
      }
      return best;
    },
  };
}

const FACTORIES: Readonly<Record<PoolStrategy, () => Strategy>> = {
  'round-robin': roundRobin,
  random,
  'least-connections': leastConnections,
  failover,
  sticky,
  // Until latency is tracked per member, the fastest known member is the first healthy one.
  fastest: failover,
};

export function createStrategy(kind: PoolStrategy): Strategy {
  return FACTORIES[kind]();
}
