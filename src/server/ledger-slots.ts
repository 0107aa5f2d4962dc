// In a cluster worker: how many of this process's slots of each key (a client address, a
// user) the instance's ledger counts (shared-limits.ts). Slots of one key are alike there, so
// a connection that closes gives one back only while the ledger holds more of its key than
// this process has open: one admitted while no limit applied, or on this process's own count
// when the primary did not answer, held none. A reload that sets a share hands the ledger
// the ones it lacks (adopt), so another worker cannot admit a full share beside them.
import { sourceSlot, userSlot, type SharedLimits } from './shared-limits.js';

export type SlotKind = 'source' | 'user';

export class LedgerSlots {
  readonly #shared: SharedLimits;
  readonly #held: Readonly<Record<SlotKind, Map<string, number>>> = { source: new Map(), user: new Map() };

  constructor(shared: SharedLimits) {
    this.#shared = shared;
  }

  /** A connection now counted here holds the slot of `key` the ledger granted it. */
  took(kind: SlotKind, key: string): void {
    this.#add(kind, key, 1);
  }

  /** A connection of `key` let go here, `open` remaining: the ledger gets a slot back if it holds more. */
  give(kind: SlotKind, key: string, open: number): void {
    const n = this.#held[kind].get(key) ?? 0;
    if (n <= open) return;
    if (n > 1) this.#held[kind].set(key, n - 1);
    else this.#held[kind].delete(key);
    this.#shared.give(slot(kind, key));
  }

  /** The connections open here (`open`, by key) the ledger does not count yet, for the keys `limited` now. */
  adopt(kind: SlotKind, open: Iterable<[string, number]>, limited: (key: string) => boolean): void {
    for (const [key, n] of open) {
      const missing = n - (this.#held[kind].get(key) ?? 0);
      if (missing <= 0 || !limited(key)) continue;
      this.#add(kind, key, missing);
      this.#shared.adopt(slot(kind, key), missing);
    }
  }

  #add(kind: SlotKind, key: string, n: number): void {
    this.#held[kind].set(key, (this.#held[kind].get(key) ?? 0) + n);
  }
}

const slot = (kind: SlotKind, key: string): string => (kind === 'source' ? sourceSlot(key) : userSlot(key));
