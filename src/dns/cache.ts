// The answer cache: an LRU bounded by entry count, each entry living as long
// as its answer's TTL (RFC 1035 §3.2.1), negative answers as long as
// `negative_ttl` (RFC 2308 §5).

import { LRUCache } from 'lru-cache';
import type { ResolvedAddress } from './types.js';

export type CacheEntry =
  | { kind: 'positive'; addresses: readonly ResolvedAddress[] }
  | { kind: 'negative'; reason: string };

export interface CacheCounters {
  evictions: number;
}

export interface TtlBounds {
  min_ttl?: number; // ms
  max_ttl?: number; // ms
}

/** An answer TTL in seconds → cache lifetime in ms, clamped; 0 means "do not cache". */
export function clampTtl(seconds: number, bounds: TtlBounds): number {
  let ms = Math.max(0, Math.floor(seconds * 1000));
  if (bounds.min_ttl !== undefined) ms = Math.max(ms, bounds.min_ttl);
  if (bounds.max_ttl !== undefined) ms = Math.min(ms, bounds.max_ttl);
  return ms;
}

export class DnsCache {
  readonly #lru: LRUCache<string, CacheEntry> | undefined;
  readonly #counters: CacheCounters;

  /** `size` 0 disables caching (in-flight deduplication still applies upstream of it). */
  constructor(size: number, counters: CacheCounters) {
    this.#counters = counters;
    // Bounded by `maxSize` with every entry of size 1, not by `max`: lru-cache allocates its
    // slot arrays for `max` entries up front (GBs for a cache_size of 10^8, a RangeError past
    // 2^32), while under `maxSize` they grow with the names actually cached.
    this.#lru =
      size > 0
        ? new LRUCache<string, CacheEntry>({
            maxSize: size,
            sizeCalculation: () => 1,
            dispose: (_value, _key, reason) => {
              if (reason === 'evict') this.#counters.evictions++;
            },
          })
        : undefined;
  }

  get(name: string): CacheEntry | undefined {
    return this.#lru?.get(name);
  }

  /** Stores `entry` for `ttlMs` ms; a lifetime of 0 is not stored (lru-cache reads 0 as "forever"). */
  set(name: string, entry: CacheEntry, ttlMs: number): void {
    if (!this.#lru || ttlMs <= 0) return;
    this.#lru.set(name, entry, { ttl: ttlMs });
  }

  get size(): number {
    return this.#lru?.size ?? 0;
  }

  clear(): void {
    this.#lru?.clear();
  }
}
