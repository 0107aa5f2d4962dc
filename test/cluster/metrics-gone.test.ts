// The registry a worker sends as it stops, read after node emitted its exit: node may emit a
// worker's 'exit' before the last messages on its channel are read. The primary's cluster
// events are emitted here by hand, for a worker as the sums see it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import cluster, { type Worker } from 'node:cluster';
import { EventEmitter } from 'node:events';
import { Counter, Registry } from 'prom-client';
import { WorkerApi, type WorkerMetrics } from '../../src/cluster/api.js';
import { ClusterMetrics } from '../../src/cluster/metrics.js';

async function registryCounting(n: number): Promise<WorkerMetrics> {
  const registry = new Registry();
  new Counter({ name: 'socksgate_connections_total', help: 'c', registers: [registry] }).inc(n);
  return registry.getMetricsAsJSON();
}

/** A worker whose process exited while its channel is still open, as the primary's 'exit' finds it. */
function exitedWorker(): Worker & { close: () => void } {
  let connected = true;
  const w = Object.assign(new EventEmitter(), {
    id: 1,
    isConnected: () => connected,
    isDead: () => true,
    close(): void {
      connected = false;
      w.emit('disconnect');
    },
  });
  return w as unknown as Worker & { close: () => void };
}

test('the registry a worker sent as it stopped, read after its exit, stays in the sum', async () => {
  const sums = new ClusterMetrics(new WorkerApi());
  const w = exitedWorker();
  cluster.emit('exit', w, 0, null);
  sums.final(w, await registryCounting(5));
  w.close();
  assert.match(await (await sums.scrape([])).metrics(), /^socksgate_connections_total 5$/m);
  sums.final(w, await registryCounting(7));
  assert.match(await (await sums.scrape([])).metrics(), /^socksgate_connections_total 5$/m, 'nothing from it comes back once its channel closed');
});
