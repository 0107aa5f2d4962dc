// The start-up of `workers: N`: over once every slot has a worker that serves (slots.ts).
import cluster, { type Worker } from 'node:cluster';

/**
 * Start-up: every slot must come to serve, or the process fails as one process would (a port
 * in use, a list file that vanished between load and fork): a worker that exits before it
 * served ends it. One that exits after it served is replaced, even while others still start
 * (the OOM killer as they all load their lists): waited for, it would hold the start-up, and
 * /readyz, for good.
 * Resolves with the worker whose exit failed the start-up, or undefined once `size` workers
 * serve. Every other exit goes to `exited` (to be replaced); none does once the start-up failed.
 */
export function everySlotServing(
  size: number,
  serving: () => Worker[],
  served: (w: Worker) => boolean,
  exited: (w: Worker, code: number | null, signal: string | null) => void,
): Promise<Worker | undefined> {
  let phase: 'starting' | 'running' | 'failed' = 'starting';
  let settle: (failed: Worker | undefined) => void = () => {};
  const started = new Promise<Worker | undefined>((resolve) => (settle = resolve));
  cluster.on('message', () => {
    if (phase !== 'starting' || serving().length < size) return;
    phase = 'running';
    settle(undefined);
  });
  cluster.on('exit', (w: Worker, code: number | null, signal: string | null) => {
    if (phase === 'starting' && !served(w)) {
      phase = 'failed';
      settle(w);
    } else if (phase !== 'failed') exited(w, code, signal);
  });
  return started;
}
