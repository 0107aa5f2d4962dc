// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): the first node:cluster worker of the second slot sends its
// answers to the primary's /api requests SLOW_MS late, as a worker busy with traffic does, so a
// request is still in flight when another worker comes to serve. The product never loads it.
import cluster from 'node:cluster';

export const SLOW_MS = 7_000;

const send = process.send?.bind(process);
if (send && cluster.isWorker && process.env.SOCKSGATE_WORKER_SLOT === '1' && process.env.SOCKSGATE_WORKER_GENERATION === '0') {
  process.send = ((...args: Parameters<typeof send>): boolean => {
    const [msg] = args;
    if (typeof msg !== 'object' || msg === null || (msg as { socksgate?: unknown }).socksgate !== 'api-answer') return send(...args);
    setTimeout(() => send(...args), SLOW_MS);
    return true;
  }) as typeof process.send;
}
