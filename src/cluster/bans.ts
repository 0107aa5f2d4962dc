// With `workers: N`, bans and unbans given through the API are the primary's to keep and pass
// on: to a worker that comes to serve later, and to one that came while they were asked
// (admin.ts).
import type { Worker } from 'node:cluster';
import type { ApiRequest, WorkerApi } from './api.js';
import type { ApiAnswer } from '../observe/api.js';

/**
 * Bans given through the API, kept by the primary: a worker that starts later (a replacement)
 * gets the ones still running, so every worker keeps the same members out of rotation.
 */
export class BanLedger {
  /** Pool and member as the answer names them (decoded: any spelling of the path is the same ban) → end of the ban (epoch ms). */
  readonly #until = new Map<string, { pool: string; member: string; until: number }>();

  /** Notes a ban or an unban the workers accepted (the merged answer names the pool and the member). */
  note(method: string, answer: ApiAnswer): void {
    if (answer.status !== 200 || (answer.operation !== 'banMember' && answer.operation !== 'unbanMember')) return;
    const body = (answer.body ?? {}) as { pool?: unknown; member?: unknown; banned_until?: unknown };
    if (typeof body.pool !== 'string' || typeof body.member !== 'string') return;
    const key = JSON.stringify([body.pool, body.member]);
    const until = Date.parse(String(body.banned_until ?? ''));
    if (method === 'POST' && Number.isFinite(until)) this.#until.set(key, { pool: body.pool, member: body.member, until });
    else this.#until.delete(key);
  }

  /**
   * A ban or an unban the workers asked accepted goes to `late` too: workers that came to serve
   * while it was being asked (a replacement) were given the bans as they stood then, without it.
   */
  forward(api: WorkerApi, request: ApiRequest, answer: ApiAnswer, late: readonly Worker[]): void {
    if (answer.status !== 200 || (answer.operation !== 'banMember' && answer.operation !== 'unbanMember')) return;
    for (const w of late) void api.askOne(w, request.method, request.url, request.body);
  }

  /** Gives `worker` every ban still running. */
  replay(api: WorkerApi, worker: Worker): void {
    const now = Date.now();
    for (const [key, { pool, member, until }] of this.#until) {
      if (until <= now) this.#until.delete(key);
      else void api.askOne(worker, 'POST', `/api/upstreams/${encodeURIComponent(pool)}/members/${encodeURIComponent(member)}/ban`, { for: `${until - now}ms` });
    }
  }
}
