// With `workers`, every /api request goes to every worker (src/cluster/admin.ts) and their answers
// become one here: what each worker holds (its connections, its counters) is added up, what
// each one was told to do (kill, ban, reload) succeeded if it succeeded where it could, and
// what every worker answers alike (a route's decision, the document) is the first's.

import type { ApiAnswer } from './api.js';

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);
const arrayOf = (x: unknown): Json[] => (Array.isArray(x) ? x.filter(isObject) : []);
const num = (x: unknown): number => (typeof x === 'number' ? x : 0);

/** Answers to a request that changes every worker: they must all have answered. */
const CHANGES = new Set(['banMember', 'unbanMember', 'reload']);

/**
 * The answers of the workers that answered, in worker order, as one; `asked` workers were
 * asked. A read tells in `x-socksgate-workers` how many of them its figures cover; a change
 * that not every worker confirmed is a 503, since it may have reached only some.
 */
export function mergeAnswers(answers: readonly ApiAnswer[], asked: number): ApiAnswer {
  const first = answers[0];
  if (!first) return { status: 503, body: { error: 'no worker answered' } };
  const failed = answers.find((a) => a.status !== 200);
  const missing = asked - answers.length;
  const covered = { 'x-socksgate-workers': `${answers.length}/${asked}` };
  const read = (body: unknown): ApiAnswer => ({ status: 200, body, headers: covered, operation: first.operation });
  if (first.operation !== undefined && CHANGES.has(first.operation) && !failed && missing > 0) {
    return { status: 503, body: { error: `${answers.length} of ${asked} workers confirmed: the change may have reached only some; repeat it` }, operation: first.operation };
  }
  switch (first.operation) {
    case 'listConnections':
      return failed ?? read(answers.flatMap((a) => arrayOf(a.body)).sort((a, b) => num(a.id) - num(b.id)));
    case 'killConnection': {
      // Only the worker that holds the connection finds it; one that did not answer might.
      const found = answers.find((a) => a.status === 200);
      if (found) return found;
      return missing > 0 ? { status: 503, body: { error: `${answers.length} of ${asked} workers answered, none holds it` }, operation: first.operation } : first;
    }
    case 'stats':
      return failed ?? read(sumStats(answers.map((a) => a.body)));
    case 'listUpstreams':
      return failed ?? read(mergeUpstreams(answers.map((a) => a.body)));
    default:
      // A change done by every worker: a refusal anywhere is the answer.
      // explainRoute, openapi: each worker answers alike.
      return failed ?? first;
  }
}

/**
 * A merged /api/stats answer with what the workers gone since start counted (`gone` reads it:
 * the primary keeps it as it does for /metrics): a replaced worker takes none of the totals with it.
 */
export function withGoneStats(answer: ApiAnswer, gone: () => unknown): ApiAnswer {
  if (answer.operation !== 'stats' || answer.status !== 200) return answer;
  return { ...answer, body: sumStats([answer.body, gone()]) };
}

function sumStats(bodies: unknown[]): Json {
  const rules = new Map<string, { rule: string; matches: number; up: number; down: number }>();
  let time = 0;
  const connections = { open: 0, finished: 0 };
  const bytes = { up: 0, down: 0 };
  for (const b of bodies.filter(isObject)) {
    time = Math.max(time, num(b.time));
    const c = isObject(b.connections) ? b.connections : {};
    connections.open += num(c.open);
    connections.finished += num(c.finished);
    const y = isObject(b.bytes) ? b.bytes : {};
    bytes.up += num(y.up);
    bytes.down += num(y.down);
    for (const r of arrayOf(b.rules)) {
      const name = String(r.rule);
      const into = rules.get(name) ?? { rule: name, matches: 0, up: 0, down: 0 };
      into.matches += num(r.matches);
      into.up += num(r.up);
      into.down += num(r.down);
      rules.set(name, into);
    }
  }
  return { time, connections, bytes, rules: [...rules.values()] };
}

/**
 * One upstream or member as the cluster sees it: counts added up, healthy only where every
 * worker finds it so, a ban only as long as every worker holds one (else null), the longest
 * ejection and failure run, the mean latency of the workers that measured one.
 */
function mergeCounters(views: Json[]): Json {
  const merged: Json = { ...views[0] };
  merged.healthy = views.every((v) => v.healthy === true);
  for (const k of ['active', 'attempts', 'failures']) merged[k] = views.reduce((n, v) => n + num(v[k]), 0);
  const latencies = views.map((v) => v.latency_ms).filter((l): l is number => typeof l === 'number');
  // Not rounded: one process gives the measure as it is, and loopback or LAN hops take under 1 ms.
  merged.latency_ms = latencies.length > 0 ? latencies.reduce((a, b) => a + b, 0) / latencies.length : null;
  if ('banned_until' in merged) {
    const bans = views.map((v) => v.banned_until);
    merged.banned_until = bans.every((b) => typeof b === 'string') ? (bans as string[]).sort()[0] : null;
  }
  for (const k of ['ejected_for_ms', 'consecutive_failures']) if (k in merged) merged[k] = Math.max(...views.map((v) => num(v[k])));
  return merged;
}

/** Items of every worker's list, grouped by name in the first worker's order. */
function byName(lists: Json[][]): Json[][] {
  const groups = new Map<string, Json[]>();
  for (const list of lists) for (const item of list) groups.set(String(item.name), [...(groups.get(String(item.name)) ?? []), item]);
  return [...groups.values()];
}

function mergeUpstreams(bodies: unknown[]): Json {
  const views = bodies.filter(isObject);
  const upstreams = byName(views.map((v) => arrayOf(v.upstreams))).map(mergeCounters);
  const pools = byName(views.map((v) => arrayOf(v.pools))).map((same) => ({
    ...same[0],
    members: byName(same.map((p) => arrayOf(p.members))).map(mergeCounters),
  }));
  return { upstreams, pools };
}
