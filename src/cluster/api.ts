// The admin API with `workers`: the primary's admin listener checks the token and reads the
// body, then asks every worker over IPC; each answers from its own connections, pools and
// counters (observe/api.ts), and the primary merges the answers (observe/api-merge.ts).

import cluster, { type Worker } from 'node:cluster';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { answerApi, type ApiAnswer } from '../observe/api.js';
import type { ApiTarget } from '../observe/api-routes.js';
import { shownTarget } from '../observe/shown-target.js';
import { isWorkerMetrics, type WorkerMetrics } from './registry-shape.js';

/** An /api request as the primary reads it: method, path and query, the parsed body. */
export interface ApiRequest {
  method: string;
  url: string;
  body: unknown;
}

/** An /api request, as the primary hands it to a worker. */
export interface ApiAsk extends ApiRequest {
  socksgate: 'api';
  id: number;
}

export interface ApiReply {
  socksgate: 'api-answer';
  id: number;
  answer: ApiAnswer;
}

/** A scrape: the worker's registry, as prom-client's AggregatorRegistry adds registries up. */
export interface MetricsAsk {
  socksgate: 'metrics';
  id: number;
}

export interface MetricsReply {
  socksgate: 'metrics-answer';
  id: number;
  metrics: WorkerMetrics;
}

export type { WorkerMetrics } from './registry-shape.js';

/** A worker whose registry has not come in this long fails the scrape (Prometheus times out at 10 s): metrics.ts. */
export const WORKER_METRICS_MS = 5_000;

/** A worker that has not answered in this long is left out of the merge (busy, or dying). */
const WORKER_ANSWER_MS = 10_000;

/** The primary's side: one request to every live worker, their answers in worker order. */
export class WorkerApi {
  #seq = 0;
  /** Requests in flight (an /api request or a scrape), by id: the worker asked and how to settle. */
  readonly #pending = new Map<number, { worker: Worker; done: (reply: unknown) => void }>();

  constructor() {
    cluster.on('message', (_w: Worker, msg: Partial<ApiReply> | Partial<MetricsReply> | null) => {
      if (typeof msg?.id !== 'number') return;
      const pending = this.#pending.get(msg.id);
      if (msg.socksgate === 'api-answer' && isApiAnswer(msg.answer)) pending?.done(msg.answer);
      else if (msg.socksgate === 'metrics-answer' && isWorkerMetrics(msg.metrics)) pending?.done(msg.metrics);
    });
    // A worker that dies answers nothing: its share of every request in flight is left out.
    cluster.on('exit', (w: Worker) => {
      for (const p of [...this.#pending.values()]) if (p.worker === w) p.done(undefined);
    });
  }

  /** The registry of `worker`, to add up; undefined when it did not send it (gone, or not within WORKER_METRICS_MS). */
  metricsOf(worker: Worker): Promise<WorkerMetrics | undefined> {
    return this.#request<WorkerMetrics>(worker, (id) => ({ socksgate: 'metrics', id }) satisfies MetricsAsk, WORKER_METRICS_MS);
  }

  /** The answers of the workers that answered, in their order, and how many were asked. */
  ask(workers: readonly Worker[], method: string, url: string, body: unknown): Promise<{ answers: ApiAnswer[]; asked: number }> {
    const asks = workers.map((w) => this.askOne(w, method, url, body));
    return Promise.all(asks).then((answers) => ({ answers: answers.filter((a): a is ApiAnswer => a !== undefined), asked: workers.length }));
  }

  /** One worker's answer; undefined when it did not answer (gone, or not within WORKER_ANSWER_MS). */
  askOne(worker: Worker, method: string, url: string, body: unknown): Promise<ApiAnswer | undefined> {
    return this.#request<ApiAnswer>(worker, (id) => ({ socksgate: 'api', id, method, url, body }) satisfies ApiAsk, WORKER_ANSWER_MS);
  }

  /** One message to `worker` and its reply; undefined when none came (gone, or not within `ms`). */
  #request<T>(worker: Worker, message: (id: number) => object, ms: number): Promise<T | undefined> {
    if (!worker.isConnected()) return Promise.resolve(undefined);
    const id = ++this.#seq;
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (reply: unknown): void => {
        clearTimeout(timer);
        this.#pending.delete(id);
        resolve(reply as T | undefined);
      };
      this.#pending.set(id, { worker, done });
      worker.send(message(id), (err: Error | null) => {
        if (err) done(undefined);
      });
    });
  }
}

/** The worker's side: answers the primary's /api requests and scrapes from this process's gateway. */
export function answerPrimary(target: ApiTarget, registry: Registry, log: Logger): void {
  process.on('message', (msg: Partial<ApiAsk> | Partial<MetricsAsk>) => {
    if (msg?.socksgate === 'metrics' && typeof msg.id === 'number') {
      const { id } = msg;
      registry.getMetricsAsJSON().then(
        (metrics) => toPrimary({ socksgate: 'metrics-answer', id, metrics } satisfies MetricsReply),
        (err: unknown) => log.error({ err }, 'metrics not collected for the primary'),
      );
      return;
    }
    if (msg?.socksgate !== 'api' || typeof msg.id !== 'number' || typeof msg.method !== 'string' || typeof msg.url !== 'string') return;
    const { id, method, url, body } = msg;
    // Inside the chain: whatever goes wrong, even with the URL, is answered, never thrown here.
    Promise.resolve()
      .then(() => answerApi(method, new URL(url, 'http://admin.invalid'), body, target))
      .catch((err: unknown): ApiAnswer => {
        target.metrics.unexpectedErrors.inc();
        log.error({ err, url: shownTarget(url) }, 'admin request failed');
        return { status: 500, body: { error: 'internal error' } };
      })
      .then((answer) => toPrimary({ socksgate: 'api-answer', id, answer } satisfies ApiReply))
      .catch((err: unknown) => log.error({ err, url: shownTarget(url) }, 'admin answer not sent to the primary'));
  });
}

/** A worker's answer as the merge reads it: a status, and a route's name and headers when there are. */
function isApiAnswer(x: unknown): x is ApiAnswer {
  if (typeof x !== 'object' || x === null) return false;
  const { status, operation, headers } = x as Partial<Record<keyof ApiAnswer, unknown>>;
  if (!Number.isSafeInteger(status) || (operation !== undefined && typeof operation !== 'string')) return false;
  return headers === undefined || (typeof headers === 'object' && headers !== null && Object.values(headers).every((v) => typeof v === 'string'));
}

/**
 * A message from a worker to its primary. A primary gone meanwhile takes none: the send is
 * skipped, and a failure goes to a callback rather than becoming an 'error' event. `sent`
 * runs once the message is written, or could not be.
 */
export function toPrimary(msg: object, sent: () => void = ignore): void {
  if (process.connected && process.send) process.send(msg, undefined, {}, () => sent());
  else sent();
}

function ignore(): void {}
