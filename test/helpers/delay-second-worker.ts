// A fault injector for tests, preloaded with `--import` into a real CLI process (see
// startCliGateway's `preload`): the first node:cluster worker of the second slot waits a few
// seconds before it starts, as one that reads a long list or takes its share of a slow disk
// does, so the first worker serves alone meanwhile. The product never loads it.
import cluster from 'node:cluster';

export const DELAY_MS = 6_000;

if (cluster.isWorker && process.env.SOCKSGATE_WORKER_SLOT === '1' && process.env.SOCKSGATE_WORKER_GENERATION === '0') {
  await new Promise((resolve) => setTimeout(resolve, DELAY_MS));
}
