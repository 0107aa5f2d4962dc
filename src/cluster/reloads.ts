// Reloads with `workers: N`: SIGHUP and --watch go to every worker, a worker that was starting
// meanwhile catches up once it serves, the primary reads the file again for its own copy, and a
// starting worker is handed the text of the config the others run (primary.ts).
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import { workerCount } from './count.js';
import type { ToPrimary, ToWorker } from './messages.js';
import { liveWorkers } from './slots.js';
import { configText, loadConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import { ConfigWatcher } from '../config/watch.js';
import { ConfigError } from '../errors.js';
import type { ReloadLevel } from '../reload-level.js';
import { startedWith, warnRestartOnly } from '../restart-only.js';

/** The primary's copy of the config: which files to watch; the admin API's token until a worker reports the one it runs. */
export interface PrimaryConfig {
  readonly watcher: ConfigWatcher | undefined;
  current(): Config;
  /** Reads the file again for the primary's copy only (the workers reloaded through /api/reload). */
  reread(): void;
  /**
   * For a worker that just became ready: a reload sent while it was starting found no
   * listener (a worker takes messages once it serves), and one through the API was not
   * asked of it, so it is sent again.
   */
  catchUp(w: Worker): void;
  /** Numbers a reload the serving workers did through the API, for catchUp; its number. */
  reloaded(why: string): number;
  /** Sends a reload (SIGHUP, --watch) to every worker and reads the file again. */
  reload(why: string): void;
}

/** SIGHUP and --watch reach every worker; each loads, validates and logs the outcome itself. */
export function forwardReloads(log: Logger, config: Config, opts: { path: string | undefined; watch: boolean }): PrimaryConfig {
  let current = config;
  const started = startedWith(config);
  const watcher = opts.watch ? new ConfigWatcher(() => reload('watch')) : undefined;
  const reread = (): void => {
    // Held to the listeners running, as each worker's reload is (reload.ts).
    loadConfig({ path: opts.path ?? current.source, listening: config.listen })
      .then((next) => {
        // Said here once for every worker (theirs is debug): what waits for a restart.
        warnRestartOnly(log, started, next, { workers: false });
        if (workerCount(next.workers) !== workerCount(config.workers)) log.warn({ running: config.workers, configured: next.workers }, 'the number of workers changes after a restart');
        current = next;
      })
      .catch((err: unknown) => {
        if (!(err instanceof ConfigError)) log.error({ err }, 'reload: reading the configuration failed');
      })
      .finally(() => watcher?.watch(current));
  };
  // Reloads sent so far, and how many had been sent when each worker was forked.
  let reloads = 0;
  let lastWhy = '';
  const forkedAt = new WeakMap<Worker, number>();
  cluster.on('fork', (w: Worker) => forkedAt.set(w, reloads));
  const reloaded = (why: string): number => {
    lastWhy = why;
    return ++reloads;
  };
  const reload = (why: string): void => {
    const seq = reloaded(why);
    for (const w of liveWorkers()) if (w.isConnected()) w.send({ socksgate: 'reload', why, seq } satisfies ToWorker);
    reread();
  };
  const catchUp = (w: Worker): void => {
    if ((forkedAt.get(w) ?? reloads) < reloads && w.isConnected()) w.send({ socksgate: 'reload', why: `${lastWhy} (while starting)`, seq: reloads } satisfies ToWorker);
  };
  watcher?.watch(current);
  return { watcher, current: () => current, reread, catchUp, reloaded, reload };
}

/**
 * Answers a starting worker with the text of the config the workers run: this process's own
 * at first, then the last one a worker reported applying (a rejected reload reports none);
 * and with this process's own, whose listeners and log format every worker keeps.
 * The primary's own lines take that config's log level, as a single process's do once a
 * reload is applied (its outcome line, logged by followReloads, under the old level too).
 */
export function shareRunningConfig(config: Config, log: Logger, level: ReloadLevel): void {
  const { source } = config;
  const started = configText(config) ?? null;
  let text = started;
  cluster.on('message', (w: Worker, msg: Partial<ToPrimary> | null) => {
    if (msg?.socksgate === 'applied') {
      if (typeof msg.text === 'string') text = msg.text;
      if (typeof msg.logLevel === 'string' && Object.hasOwn(log.levels.values, msg.logLevel)) level.switch(msg.logLevel);
    } else if (msg?.socksgate === 'config?' && w.isConnected()) w.send({ socksgate: 'config', source, text, started } satisfies ToWorker);
  });
}
