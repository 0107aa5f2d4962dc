// The worker's side of `workers: N`: it starts from the config the primary hands it, serves the
// primary's reloads, /api requests and scrapes, and tells it what it runs (primary.ts).
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { answerPrimary, toPrimary } from './api.js';
import { COUNT_ENV, GENERATION_ENV, SLOT_ENV, type ToPrimary, type ToWorker } from './messages.js';
import { configText, parseConfig } from '../config/load.js';
import type { Config } from '../config/types.js';
import type { ApiTarget } from '../observe/api-routes.js';
import type { ReloadOutcome } from '../reload.js';
import type { IdSpace } from '../server/registry.js';
import type { SharedLimits } from '../server/shared-limits.js';
import { workerLimits } from './worker-limits.js';

/** Connection ids of one generation of a slot: its share of a block this large. */
const IDS_PER_GENERATION = 2 ** 32;

/**
 * What a starting worker runs: `config`, on the listeners and in the log format of `started`,
 * the config the cluster started with (a reload changes neither: each worker opened them at
 * its start, and a replacement must not serve other ports than the workers beside it).
 */
export interface RunningConfig {
  config: Config;
  started: Config;
}

/** What a worker does for its primary; undefined outside a cluster. */
export interface ClusterWorker {
  /**
   * The config the workers run, from the text the primary holds (the one it started with, then
   * the last one a worker applied), parsed here; undefined when the primary has none to give.
   * The file may hold an edit no reload applied yet, or one a reload rejected: a replacement
   * that read it would serve on other rules than the others, or fail to start again and again.
   */
  runningConfig(): Promise<RunningConfig | undefined>;
  /** Log bindings that tell the workers' lines apart. */
  readonly bindings: { worker: number; pid: number };
  /**
   * This worker's connection ids: its slot's residue within its generation's block, so an id
   * names one connection of the cluster, a replacement's included.
   */
  readonly connectionIds: IdSpace;
  /**
   * Where this worker's pools start their rotation, a fraction of the way round: its slot over
   * the worker count. Each worker rotates on its own, and all starting at the first member
   * would send the cluster's first requests there.
   */
  readonly rotationStart: number;
  /** The instance's per-source and per-user shares and failed logins, kept by the primary. */
  readonly sharedLimits: SharedLimits;
  /**
   * Answers the primary's metric requests from `registry` and its /api requests from `api`,
   * reloads on its word, cuts its open connections on its word (its second stop signal),
   * reports ready.
   */
  serve(registry: Registry, reload: (why: string) => Promise<ReloadOutcome | undefined>, api: ApiTarget, log: Logger, cut: () => void): void;
  /**
   * Tells the primary of the config now running: its admin token (/api requests are checked
   * with it), its log level, and its text for workers that start later.
   */
  applied(config: Config): void;
  /**
   * Sends the primary this worker's registry one last time (the counts since its last
   * collection stay in the cluster's sum); it does not wait longer than STOPPING_SEND_MS.
   */
  stopping(): Promise<void>;
  /** Closes the IPC channel once the gateway stopped, so the process can exit. */
  stopped(): void;
}

/** How long a stopping worker waits for its last registry to be sent. */
const STOPPING_SEND_MS = 1_000;

/** How long a starting worker waits for the running config's text before it reads the file. */
const CONFIG_ASK_MS = 10_000;

export function clusterWorker(): ClusterWorker | undefined {
  const self = cluster.worker;
  if (!cluster.isWorker || !self) return undefined;
  const slot = Number(process.env[SLOT_ENV] ?? 0);
  const count = Number(process.env[COUNT_ENV] ?? 1);
  const generation = Number(process.env[GENERATION_ENV] ?? 0);
  const sane = [slot, count, generation].every(Number.isSafeInteger) && slot >= 0 && count > slot && generation >= 0;
  let served: Registry | undefined;
  // The config whose text the primary has: the one started from, then the last one reported.
  let reported: Config | undefined;
  return {
    bindings: { worker: self.id, pid: process.pid },
    runningConfig() {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(undefined), CONFIG_ASK_MS);
        const isText = (x: unknown): x is string | null => typeof x === 'string' || x === null;
        const onMessage = (msg: Partial<ToWorker> | null): void => {
          if (msg?.socksgate === 'config' && typeof msg.source === 'string' && isText(msg.text) && isText(msg.started)) done({ source: msg.source, text: msg.text, started: msg.started });
        };
        const done = (running: { source: string; text: string | null; started: string | null } | undefined): void => {
          clearTimeout(timer);
          process.off('message', onMessage);
          if (running === undefined || running.text === null) return resolve(undefined);
          try {
            const started = running.started === null ? undefined : parseConfig(running.started, running.source);
            // Held to the listeners running, as the reload that applied it was (reload.ts).
            reported = running.text === running.started && started ? started : parseConfig(running.text, running.source, process.env, started?.listen);
            resolve({ config: reported, started: started ?? reported });
          } catch (err) {
            reject(err);
          }
        };
        process.on('message', onMessage);
        send({ socksgate: 'config?' });
      });
    },
    connectionIds: sane ? { first: generation * IDS_PER_GENERATION * count + slot + 1, step: count } : { first: 1, step: 1 },
    rotationStart: sane ? slot / count : 0,
    sharedLimits: workerLimits(),
    serve(registry, reload, api, log, cut) {
      served = registry;
      // Any JSON value may come (`worker.send(null)`): one that is no message of the primary's is let be.
      process.on('message', (msg: Partial<ToWorker> | null) => {
        if (msg?.socksgate === 'cut') return cut();
        // The primary numbers every reload it sends.
        if (msg?.socksgate !== 'reload' || typeof msg.seq !== 'number') return;
        const { seq } = msg;
        const trigger = typeof msg.why === 'string' ? msg.why : 'primary';
        void reload(trigger).then((outcome) => {
          if (outcome) send({ socksgate: 'reloaded', seq, trigger, outcome });
        });
      });
      // Reloads come from the primary. A SIGHUP sent to the whole process group must
      // neither reload this worker twice nor end it (the signal's default action).
      process.on('SIGHUP', () => {});
      answerPrimary(api, registry, log);
      send({ socksgate: 'ready' });
    },
    applied(config) {
      const text = config === reported ? undefined : configText(config);
      reported = config;
      send({ socksgate: 'applied', apiToken: config.metrics?.api_token ?? null, logLevel: config.log.level, ...(text === undefined ? {} : { text }) });
    },
    async stopping() {
      if (!served || !process.connected) return;
      const metrics = await served.getMetricsAsJSON().catch(() => undefined);
      if (!metrics) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOPPING_SEND_MS);
        toPrimary({ socksgate: 'stopping', metrics } satisfies ToPrimary, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    stopped() {
      if (self.isConnected()) self.disconnect();
    },
  };
}

function send(msg: ToPrimary): void {
  toPrimary(msg);
}
