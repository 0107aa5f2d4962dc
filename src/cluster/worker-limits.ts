// A worker's side of the instance's limits (server/shared-limits.ts): a limited share is asked
// of the primary's ledger (limit-ledger.ts), a failed login is passed on to it, and the ones
// other workers counted come back from it; so do the shares of the users' bandwidth.
import { toPrimary } from './api.js';
import type { LedgerToPrimary, LedgerToWorker } from './messages.js';
import type { LedgerQuestions, SharedLimits } from '../server/shared-limits.js';
import { LedgerWait } from './ledger-wait.js';

/**
 * How long a request waits for the primary's answers, all its questions together (ledger-wait.ts).
 * A primary that does not answer (gone, or stalled) must not hold every limited request: past
 * this the worker's own count, checked before asking, decides, and the ledger holds no slot
 * for it; a user's bandwidth is taken as this worker's alone.
 */
const ASK_MS = 2_000;
/** Slots asked for whose answer came too late, remembered until it comes: a stalled primary's backlog, bounded. */
const MAX_LATE = 4_096;
/** Failed logins held for the throttle while the process starts: as many as the primary gives a starting worker. */
const MAX_EARLY = 100_000;

export function workerLimits(): SharedLimits {
  let seq = 0;
  const asking = new Map<number, (answer: LedgerToWorker) => void>();
  const counters: Array<(source: string, ago: number) => void> = [];
  /**
   * Failed logins that came before this process's throttle was there to count them, with
   * when they happened (performance.now()); bounded as the primary's message is.
   */
  let early: Array<[source: string, at: number]> = [];
  const failedLogin = (source: string, ago: number): void => {
    if (counters.length > 0) for (const count of counters) count(source, ago);
    else if (early.length < MAX_EARLY) early.push([source, performance.now() - ago]);
  };
  const sharers: Array<(user: string, holders: number) => void> = [];
  /** By id: the keys of slots asked for, given up on. One granted after all goes back at once. */
  const late = new Map<number, string>();
  process.on('message', (msg: LedgerToWorker | null) => {
    switch (msg?.socksgate) {
      case 'taken': {
        if (typeof msg.id !== 'number') return;
        const key = late.get(msg.id);
        if (key === undefined) asking.get(msg.id)?.(msg);
        else if (late.delete(msg.id) && msg.ok === true) toPrimary({ socksgate: 'give', key } satisfies LedgerToPrimary);
        return;
      }
      case 'holders':
        if (typeof msg.id === 'number') asking.get(msg.id)?.(msg);
        return;
      case 'login-failed':
        if (typeof msg.source === 'string') failedLogin(msg.source, 0);
        return;
      case 'login-failures':
        // The answer to this process's first question: every failure passed on to it before is
        // in it too (one channel, in order). Once the throttle counts, it has them all already.
        if (counters.length > 0 || !Array.isArray(msg.failures)) return;
        early = [];
        for (const f of msg.failures as unknown[]) if (isFailure(f)) failedLogin(f[0], f[1]);
        return;
      case 'share':
        if (typeof msg.user === 'string' && Number.isSafeInteger(msg.holders) && msg.holders > 0) for (const s of sharers) s(msg.user, msg.holders);
        return;
    }
  });
  /**
   * One question of a request to the primary; `otherwise` when it cannot be asked, or is not
   * answered within what is left of the request's wait (then `gaveUp` runs with its id).
   */
  const ask = <T>(wait: LedgerWait, question: (id: number) => LedgerToPrimary, read: (answer: LedgerToWorker) => T, otherwise: T, gaveUp?: (id: number) => void): Promise<T> => {
    if (!process.connected) return Promise.resolve(otherwise);
    const ms = wait.begin();
    if (ms === 0) return Promise.resolve(otherwise);
    const id = ++seq;
    return new Promise((resolve) => {
      const done = (value: T): void => {
        clearTimeout(timer);
        asking.delete(id);
        resolve(value);
      };
      const timer = setTimeout(() => {
        wait.timedOut();
        gaveUp?.(id);
        done(otherwise);
      }, ms);
      asking.set(id, (answer) => {
        wait.answered();
        done(read(answer));
      });
      toPrimary(question(id));
    });
  };
  const questions = (wait: LedgerWait): LedgerQuestions => ({
    take(key, max) {
      const gaveUp = (id: number): void => {
        if (late.size >= MAX_LATE) late.delete(late.keys().next().value!);
        late.set(id, key);
      };
      return ask<boolean | undefined>(wait, (id) => ({ socksgate: 'take', id, key, max }), (a) => a.socksgate === 'taken' && a.ok === true, undefined, gaveUp);
    },
    bandwidthHolders(user) {
      const count = (a: LedgerToWorker): number => (a.socksgate === 'holders' && Number.isSafeInteger(a.holders) && a.holders >= 0 ? a.holders : 0);
      return ask(wait, (id) => ({ socksgate: 'holders?', id, user }), count, 0);
    },
  });
  return {
    asking: (unanswered) => questions(new LedgerWait(ASK_MS, unanswered)),
    holdBandwidth(user, held) {
      toPrimary({ socksgate: 'hold', user, held } satisfies LedgerToPrimary);
    },
    onBandwidthShare(share) {
      sharers.push(share);
    },
    give(key) {
      toPrimary({ socksgate: 'give', key } satisfies LedgerToPrimary);
    },
    adopt(key, n) {
      toPrimary({ socksgate: 'adopt', key, n } satisfies LedgerToPrimary);
    },
    loginFailed(source) {
      toPrimary({ socksgate: 'login-failed', source } satisfies LedgerToPrimary);
    },
    onLoginFailed(count) {
      counters.push(count);
      const now = performance.now();
      for (const [source, at] of early) count(source, now - at);
      early = [];
    },
  };
}

/** One `[source, ago]` of a `login-failures` message, as the primary sends them. */
function isFailure(f: unknown): f is [source: string, ago: number] {
  return Array.isArray(f) && typeof f[0] === 'string' && typeof f[1] === 'number' && Number.isFinite(f[1]) && f[1] >= 0;
}
