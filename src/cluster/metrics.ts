// The primary's /metrics with `workers`: the workers' registries added up (prom-client's
// AggregatorRegistry), such that a counter of the sum never goes down when a worker dies.
//
// A worker's counters vanish with it, and a sum without them would go down: Prometheus reads
// that as a counter reset and counts everything again. So the primary keeps the last registry
// it collected from each worker (at every scrape, every SNAPSHOT_MS, and the one a worker
// sends as it stops) and, once the worker is gone, goes on adding that one's counters and
// histograms (never its gauges: the open connections of a dead worker are not open). What a
// worker that crashed counted after its last collection is lost: at most SNAPSHOT_MS, or the
// time since the last scrape if that is shorter. Every value a scrape showed is kept, so the
// sum never goes down; it only misses that last stretch.
//
// Reloads are counted here too: each worker reloads on its own, and a sum of their counts
// would show one SIGHUP as N reloads (the workers' own counter is `omit`ted from the sum).

import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import { WORKER_METRICS_MS, type WorkerApi, type WorkerMetrics } from './api.js';
import { HttpError } from '../observe/http.js';
import { RELOADS } from '../observe/metrics.js';

/** How often the primary collects every worker's registry between scrapes. */
export const SNAPSHOT_MS = 10_000;

type Metric = WorkerMetrics[number];
type Value = Metric['values'][number] & { metricName?: string };

/** What a gone worker's registry leaves: types whose every value only ever grows. */
const KEPT_TYPES = new Set(['counter', 'histogram']);

/** Which of a metric's values are summed over the workers and kept from gone ones. */
function keptWhenGone(m: Metric): boolean {
  // prom-client's typings call `type` an enum; the JSON carries the type's name.
  return KEPT_TYPES.has(String(m.type)) && (m.aggregator ?? 'sum') === 'sum';
}

function valueKey(v: Value): string {
  const labels = Object.entries(v.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([v.metricName ?? '', labels]);
}

/** The running sum of the counters of every worker that is gone, by metric and series. */
class GoneTotals {
  readonly #metrics = new Map<string, { head: Omit<Metric, 'values'>; values: Map<string, Value> }>();

  add(registry: WorkerMetrics): void {
    for (const m of registry.filter(keptWhenGone)) {
      let into = this.#metrics.get(m.name);
      if (!into) {
        const { values: _values, ...head } = m;
        this.#metrics.set(m.name, (into = { head, values: new Map() }));
      }
      for (const v of m.values as Value[]) {
        const key = valueKey(v);
        const held = into.values.get(key);
        into.values.set(key, { ...v, value: (held?.value ?? 0) + v.value });
      }
    }
  }

  /** As one more worker's registry, to add to the live ones. */
  registry(): WorkerMetrics {
    return [...this.#metrics.values()].map(({ head, values }) => ({ ...head, values: [...values.values()] }));
  }
}

/** The last registry collected from each worker and what the gone ones left, summed on request. */
export class ClusterMetrics {
  readonly #api: WorkerApi;
  /** Each live worker's latest registry: `stamp` orders collections (a later one never yields to an earlier). */
  readonly #last = new Map<Worker, { stamp: number; registry: WorkerMetrics }>();
  readonly #gone = new GoneTotals();
  /** Workers whose registry went into #gone: a late answer of theirs must not come back. */
  readonly #retired = new WeakSet<Worker>();
  #stamp = 0;
  /** The primary's own: socksgate_reloads_total, one per reload. */
  readonly #own = new Registry();
  readonly #reloads = new Counter({ ...RELOADS, registers: [this.#own] });
  /**
   * prom-client leaves the workers' start times out of the sum (`omit`): the gateway's own
   * process, this one, gives it, so uptime and restart queries work as with one process.
   */
  readonly #started = new Gauge({ name: 'socksgate_process_start_time_seconds', help: 'Start time of the process since unix epoch in seconds.', registers: [this.#own] });

  constructor(api: WorkerApi) {
    this.#api = api;
    for (const result of ['ok', 'rejected']) this.#reloads.inc({ result }, 0);
    this.#started.set(Math.round(Date.now() / 1000 - process.uptime())); // as prom-client's own
    // node may emit a worker's 'exit' before the last messages on its channel are read, the
    // registry it sent as it stopped among them: it retires once its channel closed too.
    cluster.on('exit', (w: Worker) => (w.isConnected() ? w.once('disconnect', () => this.#retire(w)) : this.#retire(w)));
  }

  /**
   * Collects the registry of every one of `workers` and sums it with what the others left.
   * Rejects (HttpError 503) when a worker still connected did not answer in time: leaving its
   * gauges out would be wrong, and its stale ones too. One that died or let go of its channel
   * meanwhile is left out of the gauges; its counters come from its last collection.
   */
  async scrape(workers: readonly Worker[]): Promise<Registry> {
    const fresh = await this.collect(workers);
    const missing = workers.find((w) => !fresh.has(w) && !w.isDead() && w.isConnected());
    // Unavailable, not an internal error: the scrape is refused until that worker answers again.
    if (missing) throw new HttpError(503, `worker ${missing.id} (pid ${missing.process.pid}) sent no metrics within ${WORKER_METRICS_MS / 1000} s`);
    const registries: WorkerMetrics[] = [this.#gone.registry()];
    for (const [w, { registry }] of this.#last) registries.push(fresh.has(w) ? registry : registry.filter(keptWhenGone));
    return Registry.merge([AggregatorRegistry.aggregate(registries), this.#own]);
  }

  /** Asks `workers` for their registries and keeps them; the workers that answered. */
  async collect(workers: readonly Worker[]): Promise<Set<Worker>> {
    const stamp = ++this.#stamp;
    const fresh = new Set<Worker>();
    await Promise.all(
      workers.map(async (w) => {
        const registry = await this.#api.metricsOf(w);
        if (registry && this.#note(w, stamp, registry)) fresh.add(w);
      }),
    );
    return fresh;
  }

  /** The counters of the workers gone since start, as one more worker's registry (for /api/stats). */
  goneCounters(): WorkerMetrics {
    return this.#gone.registry();
  }

  /** The registry a worker sent as it stopped: newer than any collection. */
  final(w: Worker, registry: WorkerMetrics): void {
    this.#note(w, Infinity, registry);
  }

  /**
   * One reload, however many workers did it (reload-outcomes.ts counts each once:
   * the first worker's outcome for SIGHUP and --watch, the merged answer for POST /api/reload).
   */
  reloaded(result: 'ok' | 'rejected'): void {
    this.#reloads.inc({ result });
  }

  #note(w: Worker, stamp: number, registry: WorkerMetrics): boolean {
    if (this.#retired.has(w)) return false;
    const held = this.#last.get(w);
    if (!held || held.stamp < stamp) this.#last.set(w, { stamp, registry });
    return true;
  }

  #retire(w: Worker): void {
    const held = this.#last.get(w);
    this.#retired.add(w);
    this.#last.delete(w);
    if (held) this.#gone.add(held.registry);
  }
}
