// The primary's worker slots with `workers: N`: it forks one worker a slot, replaces one that
// dies (after a pause that grows while they die young), waits at start-up for every slot to
// serve (startup.ts), and drains or kills them all on a stop (primary.ts).
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { COUNT_ENV, GENERATION_ENV, SLOT_ENV, type ToWorker } from './messages.js';
import { ServedWorkers } from './served-workers.js';
import { everySlotServing } from './startup.js';

/**
 * A worker that dies before it served, or within STEADY_MS of serving, is one death in a row of
 * its slot. The first is replaced at once, as one that served longer is; from the second on,
 * the restart waits a pause that doubles each time, up to RESTART_PAUSE_MAX_MS (systemd's and
 * PM2's restart backoff): a worker that cannot start (a list file gone, a volume not mounted)
 * costs a start every half minute, not every second forever, and is back within that time
 * once the cause is gone.
 */
const RESTART_PAUSE_MS = 1_000;
const RESTART_PAUSE_MAX_MS = 30_000;
const STEADY_MS = 10_000;

/** The pause before restarting a slot whose workers died `inARow` times in a row soon after they started. */
function restartPause(inARow: number): number {
  return inARow <= 1 ? 0 : Math.min(RESTART_PAUSE_MS * 2 ** Math.min(inARow - 2, 30), RESTART_PAUSE_MAX_MS);
}

/** The primary's workers, slot by slot: what superviseWorkers returns. */
export type WorkerSlots = ReturnType<typeof superviseWorkers>;

/**
 * Forks `size` workers and keeps that many running until drain() or kill(); `onReady` runs
 * for each once it serves (a replacement too).
 */
export function superviseWorkers(log: Logger, size: number, onReady: (w: Worker) => void) {
  // Per slot, how many of its workers in a row died soon after they started.
  const earlyExits = new Map<number, number>();
  // Restarts waiting out their pause: a stop cancels them, so the process exits without waiting.
  const pending = new Set<NodeJS.Timeout>();
  let stopping = false;
  const roster = new ServedWorkers<Worker>(onReady);
  // Registered before the start-up's listener, so a worker is served when that one looks.
  cluster.on('message', (w: Worker, msg: unknown) => roster.receive(w, msg));
  // The kernel hands each accept to whichever worker is waiting (SCHED_NONE), instead of the
  // primary accepting every connection and passing it over IPC in turn (SCHED_RR, Node's
  // default outside Windows): the primary's accept loop and the handle passing cost as much
  // as a second worker gained. NODE_CLUSTER_SCHED_POLICY still overrides it.
  if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
  const slots = new Map<Worker, number>();
  const generations = new Map<number, number>();
  const fork = (slot: number): Worker => {
    const generation = generations.get(slot) ?? 0;
    generations.set(slot, generation + 1);
    const w = cluster.fork({ [SLOT_ENV]: String(slot), [COUNT_ENV]: String(size), [GENERATION_ENV]: String(generation) });
    // A message to a worker whose channel just closed (EPIPE) is an 'error' here: logged,
    // never thrown in the primary; the worker's exit is handled by 'exit'.
    w.on('error', (err: Error) => log.warn({ err, worker: w.id }, 'worker channel error'));
    slots.set(w, slot);
    return w;
  };
  for (let slot = 0; slot < size; slot++) fork(slot);
  const started = everySlotServing(size, () => serving(), (w) => roster.served(w), (w, code, signal) => replace(w, code, signal));
  const replace = (w: Worker, code: number | null, signal: string | null): void => {
    const served = roster.drop(w);
    const slot = slots.get(w) ?? 0;
    slots.delete(w);
    if (stopping) {
      // Its open connections are gone without their drain: said, unless it is the SIGTERM the
      // drain sent (a worker still starting has no handler yet) or a drain that ended well.
      if ((code !== 0 || signal !== null) && signal !== 'SIGTERM') log.warn({ worker: w.id, pid: w.process.pid, code, signal }, 'worker exited while draining');
      return;
    }
    const steady = served !== undefined && Date.now() - served >= STEADY_MS;
    const inARow = steady ? 0 : (earlyExits.get(slot) ?? 0) + 1;
    earlyExits.set(slot, inARow);
    const pause = restartPause(inARow);
    // Error, not warn, for one that never served: it failed to start, which a restart alone may not mend.
    const level = served === undefined ? 'error' : 'warn';
    log[level]({ worker: w.id, pid: w.process.pid, code, signal, restartInMs: pause, ...(inARow > 0 ? { exitsInARow: inARow } : {}) }, 'worker exited; starting a replacement');
    const timer = setTimeout(() => {
      pending.delete(timer);
      if (!stopping) fork(slot);
    }, pause);
    pending.add(timer);
  };
  const cancelRestarts = (): void => {
    stopping = true;
    for (const timer of pending) clearTimeout(timer);
    pending.clear();
  };
  const serving = (): Worker[] => liveWorkers().filter((w) => roster.served(w)).sort((a, b) => (slots.get(a) ?? 0) - (slots.get(b) ?? 0));
  return {
    started,
    /**
     * Every slot has a worker that serves. Counting the live ones would not do: a worker that
     * died is gone from them before its replacement is forked (after its restartPause).
     */
    allReady: (): boolean => serving().length === size,
    /**
     * The workers serving, in slot order: the order their /api answers are merged in. One still
     * starting (a replacement) is not asked: it could not answer yet.
     */
    serving,
    /** The admin token the first serving worker runs with (null: none); undefined before one reported. */
    appliedToken(): string | null | undefined {
      const first = serving().find((w) => roster.hasToken(w));
      return first === undefined ? undefined : roster.token(first);
    },
    kill(): void {
      cancelRestarts();
      for (const w of liveWorkers()) w.process.kill('SIGKILL');
    },
    /**
     * A second stop signal: every worker cuts its open connections, writes their access-log
     * lines and exits; one still running after `ms` (still starting, or stuck) is killed.
     */
    async cut(ms: number): Promise<void> {
      cancelRestarts();
      const exits = liveWorkers().map((w) => {
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        if (w.isConnected()) w.send({ socksgate: 'cut' } satisfies ToWorker, () => {});
        return exited;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(exits), new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
      clearTimeout(timer);
      for (const w of liveWorkers()) w.process.kill('SIGKILL');
    },
    /** SIGTERM to every worker (each drains as a single process does); resolves when all exited. */
    drain(): Promise<void> {
      cancelRestarts();
      const exits = liveWorkers().map((w) => {
        const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()));
        w.process.kill('SIGTERM');
        return exited;
      });
      return Promise.all(exits).then(() => {});
    },
  };
}

export function liveWorkers(): Worker[] {
  return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined && !w.isDead());
}
