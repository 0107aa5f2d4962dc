// The workers' reports to the primary's log and sums with `workers: N`: each reload logged and
// counted once, however many workers did it, a worker that came to another outcome of it named,
// and the registry a stopping worker sends kept for the sum (primary.ts).
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { ToPrimary } from './messages.js';
import type { ClusterMetrics } from './metrics.js';
import { isWorkerMetrics } from './registry-shape.js';
import type { ReloadLevel } from '../reload-level.js';
import { logReloadOutcome, type ReloadOutcome } from '../reload.js';

/** Said when the workers did not all come to the same outcome of one reload. */
export const DIFFERING = "a worker's reload outcome differs from the one logged";

/** How many reloads' logged outcomes are kept, for the reports of workers that come later. */
const OUTCOMES_KEPT = 16;

/**
 * The workers' reload outcomes, and the registry each sends as it stops, go to the sums. A
 * reload is logged once, as it is counted, with the first outcome: a worker's report for
 * SIGHUP and --watch, the merged answer for the API (PRODUCT.md: one line per reload). A
 * worker that reports another outcome of it (one catching up on it, say) is logged too.
 * Returns how the API's outcome is given, with its reload's number.
 */
export function followReloads(sums: ClusterMetrics, log: Logger, level: ReloadLevel): (seq: number, trigger: string, outcome: ReloadOutcome, from?: Worker) => void {
  const logged = new Map<number, ReloadOutcome['result']>();
  let forgotten = 0; // reloads up to this one are no longer in `logged`
  const settle = (seq: number, trigger: string, outcome: ReloadOutcome, from?: Worker): void => {
    const first = logged.get(seq);
    if (first !== undefined) {
      if (first !== outcome.result) log.warn({ worker: from?.id, pid: from?.process.pid, trigger, result: outcome.result, ...errorsOf(outcome) }, DIFFERING);
      return;
    }
    if (seq <= forgotten) return;
    logged.set(seq, outcome.result);
    for (const old of logged.keys()) {
      if (logged.size <= OUTCOMES_KEPT) break;
      logged.delete(old);
      forgotten = Math.max(forgotten, old);
    }
    sums.reloaded(outcome.result);
    // A worker's `applied` came before its outcome (one IPC channel, in order): written under the level it replaced too.
    level.outcome(() => logReloadOutcome(log, trigger, outcome));
  };
  cluster.on('message', (w: Worker, msg: Partial<ToPrimary> | null) => {
    if (msg?.socksgate === 'stopping' && isWorkerMetrics(msg.metrics)) return sums.final(w, msg.metrics);
    if (msg?.socksgate === 'reloaded' && typeof msg.seq === 'number' && typeof msg.trigger === 'string' && isReloadOutcome(msg.outcome)) settle(msg.seq, msg.trigger, msg.outcome, w);
  });
  return settle;
}

const errorsOf = (o: ReloadOutcome): { errors?: string[] } => (o.result === 'rejected' ? { errors: o.errors } : {});

/** A reload's outcome as a worker sends it (IPC) or answers it (/api/reload). */
export function isReloadOutcome(x: unknown): x is ReloadOutcome {
  if (typeof x !== 'object' || x === null) return false;
  const o = x as Partial<Record<'result' | 'config' | 'errors', unknown>>;
  if (typeof o.config !== 'string') return false;
  return o.result === 'ok' || (o.result === 'rejected' && Array.isArray(o.errors) && o.errors.every((e) => typeof e === 'string'));
}
