// Running totals for GET /api/stats: what finished connections left in the counters plus
// what open ones have moved so far, so a graph of the differences moves while a big
// download is still running.

import type { Metrics } from './metrics.js';
import type { ConnectionInfo, OpenConnections } from './open-connections.js';

type Values = Array<{ value: number; labels: Partial<Record<string, string | number>> }>;

const sum = (values: Values, pred: (l: Values[number]['labels']) => boolean = () => true): number =>
  values.reduce((n, v) => (pred(v.labels) ? n + v.value : n), 0);

export interface Stats {
  time: number;
  connections: { open: number; finished: number };
  bytes: { up: number; down: number };
  rules: Array<{ rule: string; matches: number; up: number; down: number }>;
}

/** The counters the totals come from, by name: a registry's own, or one a gone worker left (countedStats). */
const COUNTED = {
  bytes: 'socksgate_bytes_total',
  finished: 'socksgate_connections_total',
  matches: 'socksgate_rule_matches_total',
  ruleBytes: 'socksgate_rule_bytes_total',
} as const;

type Counted = Record<keyof typeof COUNTED, Values>;

export async function readStats(metrics: Metrics, connections: OpenConnections): Promise<Stats> {
  const [bytes, finished, matches, ruleBytes] = await Promise.all([
    metrics.bytes.get(),
    metrics.connections.get(),
    metrics.ruleHits.get(),
    metrics.ruleBytes.get(),
  ]);
  return totals({ bytes: bytes.values, finished: finished.values, matches: matches.values, ruleBytes: ruleBytes.values }, connections.list());
}

/**
 * The totals in a registry as JSON (prom-client's getMetricsAsJSON()), with no connection open:
 * with `workers`, what the workers gone since start counted, which the primary keeps for /metrics.
 */
export function countedStats(registry: ReadonlyArray<{ name: string; values: Values }>): Stats {
  const values = (name: string): Values => registry.find((m) => m.name === name)?.values ?? [];
  return totals({ bytes: values(COUNTED.bytes), finished: values(COUNTED.finished), matches: values(COUNTED.matches), ruleBytes: values(COUNTED.ruleBytes) }, []);
}

function totals({ bytes, finished, matches, ruleBytes }: Counted, open: ConnectionInfo[]): Stats {
  // Bytes of a request whose line is written are in the counters: added once, from there.
  const moving = open.filter((c) => !c.logged);
  const rules = new Map<string, Stats['rules'][number]>();
  const ruleOf = (name: string): Stats['rules'][number] => {
    let r = rules.get(name);
    if (!r) rules.set(name, (r = { rule: name, matches: 0, up: 0, down: 0 }));
    return r;
  };
  for (const v of matches) ruleOf(String(v.labels.rule)).matches += v.value;
  for (const v of ruleBytes) ruleOf(String(v.labels.rule))[v.labels.direction === 'up' ? 'up' : 'down'] += v.value;
  for (const c of moving) {
    if (c.rule === undefined) continue;
    const r = ruleOf(c.rule);
    r.up += c.up;
    r.down += c.down;
  }
  return {
    time: Date.now(),
    connections: { open: open.length, finished: sum(finished) },
    bytes: {
      up: sum(bytes, (l) => l.direction === 'up') + moving.reduce((n, c) => n + c.up, 0),
      down: sum(bytes, (l) => l.direction === 'down') + moving.reduce((n, c) => n + c.down, 0),
    },
    rules: [...rules.values()],
  };
}
