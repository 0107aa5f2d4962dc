// The primary's side of the instance's limits (server/shared-limits.ts): how many slots of
// each key (a client address's share, a user's) every worker holds, which workers hold a
// bucket of each user's bandwidth, and the failed logins passed on. One process answers in
// turn, so two workers asking for a share's last slot at once cannot both have it. A worker
// that dies holds nothing any more, whatever of its messages is read after its exit.
import cluster, { type Worker } from 'node:cluster';
import type { ThrottleLimits } from '../server/login-throttle.js';
import type { LedgerToPrimary, LedgerToWorker, ToPrimary } from './messages.js';
import { FailedLogins } from './failed-logins.js';
import { liveWorkers } from './slots.js';

/** `authFailures`: the running config's `auth_failures`, how long a failed login still counts. */
export function keepLimitLedger(authFailures: () => ThrottleLimits): void {
  const ledger = new LimitLedger<Worker>(authFailures, tell, () => liveWorkers());
  cluster.on('message', (w: Worker, msg: unknown) => ledger.receive(w, msg));
  cluster.on('exit', (w: Worker) => ledger.drop(w));
}

/** Slots held now: by key, by worker. A key goes when no worker holds any. */
type Held<W> = Map<string, Map<W, number>>;

/**
 * The counts themselves, for workers of any kind `W` (cluster's Worker in the primary): what
 * each message from a worker does, and what a worker's end gives back. `tell` answers a worker;
 * `live` lists the workers a failed login is passed on to.
 */
export class LimitLedger<W extends object> {
  readonly #held: Held<W> = new Map();
  readonly #failed: FailedLogins;
  /** By user: the workers holding a bucket of that user's bandwidth. */
  readonly #buckets = new Map<string, Set<W>>();
  readonly #tell: (w: W, msg: LedgerToWorker) => void;
  readonly #live: () => Iterable<W>;
  /**
   * Workers dropped (gone). node may emit a worker's 'exit' before the last messages on its
   * channel are read: a slot or a bucket recorded for it then would never be given back.
   * By identity, not by id: a replacement is another object (and node never reuses an id).
   */
  readonly #dropped = new WeakSet<W>();

  constructor(authFailures: () => ThrottleLimits, tell: (w: W, msg: LedgerToWorker) => void, live: () => Iterable<W>) {
    this.#failed = new FailedLogins(authFailures);
    this.#tell = tell;
    this.#live = live;
  }

  /** One message from `w`, as read from its channel. */
  receive(w: W, msg: unknown): void {
    const m = msg as Partial<LedgerToPrimary> | Partial<ToPrimary> | null;
    // A failed login still counts: the client failed, whichever worker saw it.
    if (this.#dropped.has(w) && m?.socksgate !== 'login-failed') return;
    switch (m?.socksgate) {
      case 'config?': {
        // A worker starting (a replacement too) asks this first: what the instance counted
        // reaches it ahead of its config (this handler runs before shareRunningConfig's), so
        // before its throttle is made, and a block in force holds in it too.
        const failures = this.#failed.inForce();
        if (failures.length > 0) this.#tell(w, { socksgate: 'login-failures', failures });
        return;
      }
      case 'take':
        if (typeof m.id !== 'number' || typeof m.key !== 'string' || typeof m.max !== 'number') return;
        this.#tell(w, { socksgate: 'taken', id: m.id, ok: this.#take(w, m.key, m.max) });
        return;
      case 'give':
        if (typeof m.key === 'string') this.#give(w, m.key);
        return;
      case 'adopt':
        if (typeof m.key === 'string' && typeof m.n === 'number' && Number.isSafeInteger(m.n) && m.n > 0) this.#add(w, m.key, m.n);
        return;
      case 'login-failed':
        if (typeof m.source !== 'string') return;
        this.#failed.add(m.source);
        for (const other of this.#live()) if (other !== w) this.#tell(other, { socksgate: 'login-failed', source: m.source });
        return;
      case 'holders?': {
        if (typeof m.id !== 'number' || typeof m.user !== 'string') return;
        // The asker holds from now on (its bucket follows the answer): a second worker asking
        // before the first one's bucket is made is told of it, and does not take a burst too.
        const holders = this.#buckets.get(m.user) ?? new Set<W>();
        const others = holders.size - (holders.has(w) ? 1 : 0);
        this.#tell(w, { socksgate: 'holders', id: m.id, holders: others });
        if (!holders.has(w)) {
          this.#buckets.set(m.user, holders.add(w));
          this.#share(m.user);
        }
        return;
      }
      case 'hold': {
        if (typeof m.user !== 'string') return;
        const holders = this.#buckets.get(m.user) ?? new Set<W>();
        if (m.held === true) holders.add(w);
        else holders.delete(w);
        if (holders.size === 0) this.#buckets.delete(m.user);
        else this.#buckets.set(m.user, holders);
        this.#share(m.user);
        return;
      }
    }
  }

  /** `w` is gone: every slot and bandwidth bucket it held goes back, the other holders' shares grow, and whatever of its messages is read afterwards changes nothing. */
  drop(w: W): void {
    this.#dropped.add(w);
    for (const [key, by] of this.#held) if (by.delete(w) && by.size === 0) this.#held.delete(key);
    for (const [user, holders] of this.#buckets) {
      if (!holders.delete(w)) continue;
      if (holders.size === 0) this.#buckets.delete(user);
      else this.#share(user);
    }
  }

  /** How many slots of `key` the workers hold in all. */
  count(key: string): number {
    let total = 0;
    for (const n of this.#held.get(key)?.values() ?? []) total += n;
    return total;
  }

  /** How many workers hold a bucket of `user`'s bandwidth. */
  holders(user: string): number {
    return this.#buckets.get(user)?.size ?? 0;
  }

  /** Every holder of `user`'s bandwidth is told how many they are: each relays its share of it. */
  #share(user: string): void {
    const holders = this.#buckets.get(user);
    if (holders) for (const h of holders) this.#tell(h, { socksgate: 'share', user, holders: holders.size });
  }

  #take(w: W, key: string, max: number): boolean {
    if (this.count(key) >= max) return false;
    this.#add(w, key, 1);
    return true;
  }

  #add(w: W, key: string, n: number): void {
    let by = this.#held.get(key);
    if (!by) this.#held.set(key, (by = new Map()));
    by.set(w, (by.get(w) ?? 0) + n);
  }

  /** One slot of `key` back from `w`; one it never took (its ask timed out unseen) changes nothing. */
  #give(w: W, key: string): void {
    const by = this.#held.get(key);
    const n = by?.get(w);
    if (!by || n === undefined) return;
    if (n > 1) by.set(w, n - 1);
    else if (by.delete(w) && by.size === 0) this.#held.delete(key);
  }
}

/** A worker whose channel just closed takes nothing: the failure goes to the callback, not to an 'error' event. */
function tell(w: Worker, msg: LedgerToWorker): void {
  if (w.isConnected()) w.send(msg, ignore);
}

function ignore(): void {}
