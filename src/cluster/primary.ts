// `workers: N | auto`: N processes sharing the listeners through node:cluster.
//
// The primary holds no connections. It forks the workers (slots.ts; each starts from the
// text of the config the others run, worker.ts), forwards reloads (SIGHUP, --watch) to
// every one of them (reloads.ts, outcomes logged once: reload-outcomes.ts),
// replaces a worker that dies, drains them all on
// SIGTERM/SIGINT, and runs the admin listener (admin.ts): /metrics there is the sum over workers
// (each serving worker sends its registry over IPC; prom-client's AggregatorRegistry adds them up,
// with what workers that are gone had counted, and reloads counted once: metrics.ts). It
// lives in the primary because the primary outlives any worker, so a scrape never
// depends on one worker being up. The per-connection admin API needs one process's
// open connections: the primary asks every worker and merges their answers (api.ts). It keeps
// the instance's limited shares and passes failed logins on (limit-ledger.ts).
// This file wires those parts together and runs the primary from start to stop.
//
// `workers: 1` (or `auto` on one core, count.ts) never reaches this module:
// the process runs the gateway itself, as without a cluster.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { onHangup } from '../hangup.js';
import { CUT_MS, EXIT_STOPPED_AT_ONCE, exitStoppedAtOnce, stopSignals } from '../stop-signals.js';
import type { Config } from '../config/types.js';
import { clusterAdmin, primaryApi } from './admin.js';
import { WorkerApi } from './api.js';
import { BanLedger } from './bans.js';
import { workerCount } from './count.js';
import { keepLimitLedger } from './limit-ledger.js';
import { ClusterMetrics, SNAPSHOT_MS } from './metrics.js';
import { followReloads } from './reload-outcomes.js';
import { forwardReloads, shareRunningConfig } from './reloads.js';
import { liveWorkers, superviseWorkers } from './slots.js';
import { startAdmin } from '../observe/admin.js';
import { createLogger, flushLog } from '../observe/logger.js';
import { ReloadLevel } from '../reload-level.js';
import { formatAddress } from '../server/context.js';

/** A worker cut at once has CUT_MS to log its connections; its exit and last words take a little longer. */
const WORKER_EXIT_SLACK_MS = 1_000;

/** Runs the primary until SIGTERM/SIGINT has drained every worker; the exit code. */
export async function runPrimary(config: Config, opts: { path: string | undefined; watch: boolean }): Promise<number> {
  const log = createLogger(config.log).child({ role: 'primary' });
  const size = workerCount(config.workers);
  // Signals are taken from the start: a SIGHUP while workers boot must not end the process.
  // A second stop signal stops at once (PRODUCT.md "Command line").
  let atOnce = (): void => process.exit(EXIT_STOPPED_AT_ONCE);
  const stopSignal = stopSignals((second) => {
    log.warn({ signal: second }, 'second signal: stopping at once');
    atOnce();
  });
  const workerApi = new WorkerApi();
  const sums = new ClusterMetrics(workerApi);
  const level = new ReloadLevel(log);
  const outcome = followReloads(sums, log, level);
  const bans = new BanLedger();
  // Before shareRunningConfig: a starting worker is given the failed logins still counting
  // before its config, so they are there before its throttle is.
  let running = (): Config => config;
  keepLimitLedger(() => running().limits.auth_failures);
  shareRunningConfig(config, log, level);
  const primary = forwardReloads(log, config, opts);
  running = primary.current;
  const { watcher } = primary;
  const workers = superviseWorkers(log, size, (w) => {
    bans.replay(workerApi, w);
    primary.catchUp(w);
  });
  // Each worker cuts its connections and logs them (as one process does); a little past the
  // time each has for that, whatever is left is killed.
  // The drain below ends once they have all exited.
  let cut = false;
  atOnce = (): void => {
    cut = true;
    exitStoppedAtOnce(log, CUT_MS + 2 * WORKER_EXIT_SLACK_MS);
    void workers.cut(CUT_MS + WORKER_EXIT_SLACK_MS);
  };
  /** SIGTERM to every worker (each drains as one process does); 0 once they have all exited (1 if cut). */
  const stop = async (signal: string): Promise<number> => {
    watcher?.close();
    log.info({ signal, workers: liveWorkers().length }, 'stopping: draining every worker');
    await workers.drain();
    return cut ? EXIT_STOPPED_AT_ONCE : 0;
  };
  const first = await Promise.race([workers.started.then((failed) => ({ failed })), stopSignal.then((signal) => ({ signal }))]);
  // Stopped while the workers start: none is said to listen, and no admin listener opens.
  if ('signal' in first) {
    const code = await stop(first.signal);
    log.info('stopped');
    await flushLog(log);
    return code;
  }
  const { failed } = first;
  if (failed) {
    log.error({ worker: failed.id, code: failed.process.exitCode }, 'a worker failed to start');
    workers.kill();
    watcher?.close();
    return 1;
  }
  // Once the first workers serve: a SIGHUP held since start-up (hangup.ts) reaches them all.
  onHangup(() => primary.reload('SIGHUP'));
  const api = primaryApi(workers, workerApi, bans, primary, outcome, log);
  let draining = false;
  const notReady = (): string | undefined => (draining ? 'draining' : workers.allReady() ? undefined : 'starting');
  let admin: Server | undefined;
  try {
    admin = config.metrics ? await startAdmin(config.metrics, clusterAdmin(api, sums, workers.serving, notReady, log)) : undefined;
  } catch (err) {
    // The admin port taken, say: the start fails as one process's would, workers and all.
    log.error({ err }, 'admin listener failed to start');
    workers.kill();
    watcher?.close();
    return 1;
  }
  log.info({ workers: size, pids: liveWorkers().map((w) => w.process.pid), admin: admin ? address(admin) : undefined }, 'workers listening');
  // Between scrapes too: what a worker that crashes counted since is lost from the sum.
  const snapshots = admin ? setInterval(() => void sums.collect(workers.serving()), SNAPSHOT_MS).unref() : undefined;

  const signal = await stopSignal;
  clearInterval(snapshots);
  draining = true; // a load balancer stops sending here while the workers drain
  const code = await stop(signal);
  admin?.closeAllConnections();
  admin?.close();
  log.info('stopped');
  await flushLog(log);
  return code;
}

function address(server: Server): string {
  const a = server.address() as AddressInfo;
  return formatAddress({ host: a.address, port: a.port }); // [::1]:9180, as the access log writes IPv6
}
