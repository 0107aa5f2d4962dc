// Reloading the configuration from its file: the one code path behind SIGHUP, --watch and
// POST /api/reload, so they cannot drift apart. Attempts run one at a time, in order.

import type { Logger } from 'pino';
import { loadConfig, EMBEDDED_SOURCE } from './config/load.js';
import type { Config, ListenConfig } from './config/types.js';
import { ConfigError } from './errors.js';
import { ReloadLevel } from './reload-level.js';

/** What a reload did: applied, or rejected with `FILE:LINE:COL: message` errors. */
export type ReloadOutcome = { result: 'ok'; config: string } | { result: 'rejected'; config: string; errors: string[] };

/** What the controller needs of the running gateway: its config, log and reload counter. */
export interface Reloadable {
  readonly config: Config;
  /** The listeners opened at start: a reload cannot move them. */
  readonly listening: readonly ListenConfig[];
  readonly log: Logger;
  readonly metrics: { readonly reloads: { inc(labels: { result: ReloadOutcome['result'] }): void } };
  reload(config: Config): Promise<void>;
}

/**
 * The one line a reload's outcome is logged with (PRODUCT.md "Logs"). With `workers` the
 * primary logs it, once for all of them; `debug` is a worker's own line.
 */
export function logReloadOutcome(log: Logger, trigger: string, outcome: ReloadOutcome, level?: 'debug'): void {
  if (outcome.result === 'ok') log[level ?? 'info']({ trigger, result: 'ok', config: outcome.config }, 'configuration reloaded');
  else log[level ?? 'error']({ trigger, result: 'rejected', errors: outcome.errors }, 'reload rejected; keeping the running configuration');
}

export class ReloadController {
  readonly #target: Reloadable;
  readonly #settled: Array<(outcome: ReloadOutcome) => void> = [];
  #queue: Promise<unknown> = Promise.resolve();
  /** The attempt queued behind the running one, not begun yet. */
  #waiting: Promise<ReloadOutcome> | undefined;
  readonly #level: 'debug' | undefined;
  readonly #logLevel: ReloadLevel;

  /** `workerOfCluster`: the primary logs each reload's outcome, so this process's line is debug. */
  constructor(target: Reloadable, opts: { workerOfCluster?: boolean } = {}) {
    this.#target = target;
    this.#level = opts.workerOfCluster ? 'debug' : undefined;
    this.#logLevel = new ReloadLevel(target.log);
  }

  /** Called after every attempt, applied or not (--watch re-arms its watches there). */
  onSettled(fn: (outcome: ReloadOutcome) => void): void {
    this.#settled.push(fn);
  }

  /**
   * Reads the config file again and applies it; never throws. `trigger` is logged. A reload
   * asked for while another waits its turn joins that one: it reads the file after both
   * asks, so a storm of SIGHUPs costs one more rebuild, not one per signal.
   */
  reload(trigger: string): Promise<ReloadOutcome> {
    if (this.#waiting) return this.#waiting;
    const attempt = this.#queue.then(() => {
      this.#waiting = undefined; // from here on the file may already have been read
      return this.#attempt(trigger);
    });
    this.#waiting = attempt;
    this.#queue = attempt.catch(() => {});
    return attempt;
  }

  async #attempt(trigger: string): Promise<ReloadOutcome> {
    const gw = this.#target;
    // The file the running config came from; with none, the same search start-up made.
    const source = gw.config.source;
    const path = source === EMBEDDED_SOURCE ? undefined : source;
    let outcome: ReloadOutcome;
    try {
      // Checked against the listeners running too: dropping auth from a gateway that listens
      // on 0.0.0.0 must not pass because the file now says 127.0.0.1 (PRODUCT.md "Safety defaults").
      const next = await loadConfig({ path, listening: gw.listening });
      await gw.reload(next);
      if (gw.config !== next) throw new Error('the gateway is stopping: configuration not applied');
      // Only once applied: a rejected config must not silence (or flood) the log.
      this.#logLevel.switch(next.log.level);
      outcome = { result: 'ok', config: next.source };
    } catch (err) {
      // An invalid config is reported and the running one stays (PRODUCT.md "Command line").
      const errors = err instanceof ConfigError ? [...err.issues] : [err instanceof Error ? err.message : String(err)];
      outcome = { result: 'rejected', config: source, errors };
    }
    this.#logLevel.outcome(() => logReloadOutcome(gw.log, trigger, outcome, this.#level));
    gw.metrics.reloads.inc({ result: outcome.result });
    for (const fn of this.#settled) {
      try {
        fn(outcome);
      } catch (err) {
        gw.log.error({ err }, 'after-reload hook failed');
      }
    }
    return outcome;
  }
}
