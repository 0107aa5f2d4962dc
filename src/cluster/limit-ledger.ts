// The primary's side of the instance's limits (server/shared-limits.ts): how many slots of
// each key (a client address's share, a user's) every worker holds, which workers hold a
// bucket of each user's bandwidth, and the failed logins passed on. One process answers in
// turn, so two workers asking for a share's last slot at once cannot both have it. A worker
// that dies holds nothing any more.
import cluster, { type Worker } from 'node:cluster';
import type { ThrottleLimits } from '../server/login-throttle.js';
import type { LedgerToPrimary, LedgerToWorker, ToPrimary } from './messages.js';
import { FailedLogins } from './failed-logins.js';
import { liveWorkers } from './slots.js';

/** Slots held now: by key, by worker. A key goes when no worker holds any. */
type Held = Map<string, Map<Worker, number>>;

/** `authFailures`: the running config's `auth_failures`, how long a failed login still counts. */
export function keepLimitLedger(authFailures: () => ThrottleLimits): void {
  const held: Held = new Map();
  const failed = new FailedLogins(authFailures);
  /** By user: the workers holding a bucket of that user's bandwidth. */
  const buckets = new Map<string, Set<Worker>>();
  /** Every holder of `user`'s bandwidth is told how many they are: each relays its share of it. */
  const share = (user: string): void => {
    const holders = buckets.get(user);
    if (holders) for (const h of holders) tell(h, { socksgate: 'share', user, holders: holders.size });
  };
  cluster.on('message', (w: Worker, msg: Partial<LedgerToPrimary> | Partial<ToPrimary> | null) => {
    switch (msg?.socksgate) {
      case 'config?': {
        // A worker starting (a replacement too) asks this first: what the instance counted
        // reaches it ahead of its config (this handler runs before shareRunningConfig's), so
        // before its throttle is made, and a block in force holds in it too.
        const failures = failed.inForce();
        if (failures.length > 0) tell(w, { socksgate: 'login-failures', failures });
        return;
      }
      case 'take':
        if (typeof msg.id !== 'number' || typeof msg.key !== 'string' || typeof msg.max !== 'number') return;
        tell(w, { socksgate: 'taken', id: msg.id, ok: take(held, w, msg.key, msg.max) });
        return;
      case 'give':
        if (typeof msg.key === 'string') give(held, w, msg.key);
        return;
      case 'adopt':
        if (typeof msg.key === 'string' && typeof msg.n === 'number' && Number.isSafeInteger(msg.n) && msg.n > 0) add(held, w, msg.key, msg.n);
        return;
      case 'login-failed':
        if (typeof msg.source !== 'string') return;
        failed.add(msg.source);
        for (const other of liveWorkers()) if (other !== w) tell(other, { socksgate: 'login-failed', source: msg.source });
        return;
      case 'holders?': {
        if (typeof msg.id !== 'number' || typeof msg.user !== 'string') return;
        // The asker holds from now on (its bucket follows the answer): a second worker asking
        // before the first one's bucket is made is told of it, and does not take a burst too.
        const holders = buckets.get(msg.user) ?? new Set<Worker>();
        const others = holders.size - (holders.has(w) ? 1 : 0);
        tell(w, { socksgate: 'holders', id: msg.id, holders: others });
        if (!holders.has(w)) {
          buckets.set(msg.user, holders.add(w));
          share(msg.user);
        }
        return;
      }
      case 'hold': {
        if (typeof msg.user !== 'string') return;
        const holders = buckets.get(msg.user) ?? new Set<Worker>();
        if (msg.held === true) holders.add(w);
        else holders.delete(w);
        if (holders.size === 0) buckets.delete(msg.user);
        else buckets.set(msg.user, holders);
        share(msg.user);
        return;
      }
    }
  });
  cluster.on('exit', (w: Worker) => {
    for (const [key, by] of held) if (by.delete(w) && by.size === 0) held.delete(key);
    for (const [user, holders] of buckets) {
      if (!holders.delete(w)) continue;
      if (holders.size === 0) buckets.delete(user);
      else share(user);
    }
  });
}

function take(held: Held, w: Worker, key: string, max: number): boolean {
  let total = 0;
  for (const n of held.get(key)?.values() ?? []) total += n;
  if (total >= max) return false;
  add(held, w, key, 1);
  return true;
}

function add(held: Held, w: Worker, key: string, n: number): void {
  let by = held.get(key);
  if (!by) held.set(key, (by = new Map()));
  by.set(w, (by.get(w) ?? 0) + n);
}

/** One slot of `key` back from `w`; one it never took (its ask timed out unseen) changes nothing. */
function give(held: Held, w: Worker, key: string): void {
  const by = held.get(key);
  const n = by?.get(w);
  if (!by || n === undefined) return;
  if (n > 1) by.set(w, n - 1);
  else if (by.delete(w) && by.size === 0) held.delete(key);
}

/** A worker whose channel just closed takes nothing: the failure goes to the callback, not to an 'error' event. */
function tell(w: Worker, msg: LedgerToWorker): void {
  if (w.isConnected()) w.send(msg, ignore);
}

function ignore(): void {}
