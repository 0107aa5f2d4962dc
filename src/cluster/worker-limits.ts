// A worker's side of the instance's limits (server/shared-limits.ts): a limited share is asked
// of the primary's ledger (limit-ledger.ts), a failed login is passed on to it, and the ones
// other workers counted come back from it.
import { toPrimary } from './api.js';
import type { LedgerToPrimary, LedgerToWorker } from './messages.js';
import type { SharedLimits } from '../server/shared-limits.js';

/**
 * How long a request waits for the primary's answer. A primary that does not answer (gone,
 * or stalled) must not hold every limited request: past this the worker's own count, checked
 * before asking, decides, and the slot is given back as if taken.
 */
const TAKE_MS = 2_000;

export function workerLimits(): SharedLimits {
  let seq = 0;
  const asking = new Map<number, (ok: boolean) => void>();
  const counters: Array<(source: string) => void> = [];
  process.on('message', (msg: Partial<LedgerToWorker> | null) => {
    if (msg?.socksgate === 'taken' && typeof msg.id === 'number') asking.get(msg.id)?.(msg.ok === true);
    else if (msg?.socksgate === 'login-failed' && typeof msg.source === 'string') for (const count of counters) count(msg.source);
  });
  return {
    take(key, max) {
      if (!process.connected) return Promise.resolve(true);
      const id = ++seq;
      return new Promise((resolve) => {
        const timer = setTimeout(() => answered(true), TAKE_MS);
        const answered = (ok: boolean): void => {
          clearTimeout(timer);
          asking.delete(id);
          resolve(ok);
        };
        asking.set(id, answered);
        toPrimary({ socksgate: 'take', id, key, max } satisfies LedgerToPrimary);
      });
    },
    give(key) {
      toPrimary({ socksgate: 'give', key } satisfies LedgerToPrimary);
    },
    loginFailed(source) {
      toPrimary({ socksgate: 'login-failed', source } satisfies LedgerToPrimary);
    },
    onLoginFailed(count) {
      counters.push(count);
    },
  };
}
