// The primary's admin listener with `workers: N`: /metrics summed over the workers, /readyz
// from the primary, and /api asked of every worker serving, their answers merged (primary.ts).
import type { Worker } from 'node:cluster';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ApiRequest, WorkerApi } from './api.js';
import type { BanLedger } from './bans.js';
import type { ClusterMetrics } from './metrics.js';
import { DIFFERING, isReloadOutcome, type followReloads } from './reload-outcomes.js';
import type { PrimaryConfig } from './reloads.js';
import type { WorkerSlots } from './slots.js';
import type { AdminSource } from '../observe/admin.js';
import { errorAnswer, readApiRequest, sendAnswer, type ApiAnswer } from '../observe/api.js';
import { mergeAnswers, withGoneStats } from '../observe/api-merge.js';
import { HttpError } from '../observe/http.js';
import { countedStats, type Stats } from '../observe/traffic.js';

/** What the primary's admin listener needs for /api: the token now, and the workers to ask. */
interface ClusterApi {
  token(): string | undefined;
  /** The answers of the workers asked (those serving now) that answered, and the workers asked. */
  ask(method: string, url: string, body: unknown): Promise<{ answers: ApiAnswer[]; asked: readonly Worker[] }>;
  /**
   * The merged answer to a request (and the workers' own): bans to keep for later workers and
   * to give one that came to serve meanwhile, a reload to follow and count.
   */
  settled(request: ApiRequest, asked: readonly Worker[], answer: ApiAnswer, answers: readonly ApiAnswer[]): void;
}

/**
 * The /api of the primary: the token of the config the workers run, the workers serving asked,
 * and what their merged answer settles (bans kept and forwarded, a reload followed and counted).
 */
export function primaryApi(
  workers: Pick<WorkerSlots, 'serving' | 'appliedToken'>,
  workerApi: WorkerApi,
  bans: BanLedger,
  primary: PrimaryConfig,
  outcome: ReturnType<typeof followReloads>,
  log: Logger,
): ClusterApi {
  return {
    // The token of the config the workers run (a reload they rejected leaves theirs), else the primary's own.
    token: () => {
      const applied = workers.appliedToken();
      return applied === undefined ? primary.current().metrics?.api_token : (applied ?? undefined);
    },
    ask: async (method, url, body) => {
      const asked = workers.serving();
      return { answers: (await workerApi.ask(asked, method, url, body)).answers, asked };
    },
    settled: ({ method, url, body }, asked, answer, answers) => {
      // Workers that came to serve while the others were asked (a replacement): given the bans
      // and the config as they stood when they started, they get this change too.
      const late = workers.serving().filter((w) => !asked.includes(w));
      bans.note(method, answer);
      bans.forward(workerApi, { method, url, body }, answer, late);
      if (answer.operation !== 'reload') return;
      // One reload however many workers did it: rejected if one refused (the answer says so too),
      // counted and logged once. A worker that was starting meanwhile catches up on it.
      const outcomes = answers.map((a) => a.body).filter(isReloadOutcome);
      const refused = outcomes.find((o) => o.result === 'rejected');
      const merged = refused ?? outcomes[0];
      if (merged) {
        outcome(primary.reloaded('api'), 'api', merged);
        if (refused && outcomes.some((o) => o.result === 'ok')) log.warn({ trigger: 'api', results: outcomes.map((o) => o.result) }, DIFFERING);
        for (const w of late) primary.catchUp(w);
      }
      if (answer.status === 200) primary.reread();
    },
  };
}

/**
 * What the primary's admin listener reads: /metrics summed over the workers, ready while
 * every worker listens and the primary is not draining, /api answered by every worker.
 */
export function clusterAdmin(api: ClusterApi, sums: ClusterMetrics, serving: () => Worker[], notReady: () => string | undefined, log: Logger): AdminSource {
  return {
    apiToken: api.token,
    // Only workers that serve are asked: one still starting cannot answer yet (and has
    // counted nothing). prom-client's own clusterMetrics() asks every worker and fails the
    // scrape after 5 s when one is starting, keeping each failed request for good.
    metrics: async () => {
      const registry = await sums.scrape(serving());
      return { body: await registry.metrics(), type: registry.contentType };
    },
    notReady,
    // /api/stats, like /metrics, keeps what replaced workers counted: its totals never go down.
    api: (req, res, url, token) => clusterApi(req, res, url, token, api, () => countedStats(sums.goneCounters())),
    log,
  };
}

/** One /api request: the token and body checked here, the answer every worker's, merged. */
async function clusterApi(req: IncomingMessage, res: ServerResponse, url: URL, token: string, api: ClusterApi, gone: () => Stats): Promise<void> {
  let answer: ApiAnswer;
  try {
    // Checked here, in the single process's order; each worker matches the route again for itself.
    const { body } = await readApiRequest(req, url, token);
    const method = req.method ?? '';
    const path = url.pathname + url.search;
    const { answers, asked } = await api.ask(method, path, body);
    answer = withGoneStats(mergeAnswers(answers, asked.length), gone);
    api.settled({ method, url: path, body }, asked, answer, answers);
  } catch (err) {
    if (!(err instanceof HttpError)) throw err; // the listener answers 500 and logs it
    answer = errorAnswer(err);
  }
  sendAnswer(res, answer);
}
