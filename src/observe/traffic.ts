// Running totals for GET /api/stats: what finished connections left in the counters plus
// what open ones have moved so far, so a graph of the differences moves while a big
// download is still running.

import type { Metrics } from './metrics.js';
import type { OpenConnections } from './open-connections.js';

type Values = Array<{ value: number; labels: Partial<Record<string, string | number>> }>;

const sum = (values: Values, pred: (l: Values[number]['labels']) => boolean = () => true): number =>
  values.reduce((n, v) => (pred(v.labels) ? n + v.value : n), 0);

export interface Stats {
  time: number;
  connections: { open: number; finished: number };
  bytes: { up: number; down: number };
  rules: Array<{ rule: string; matches: number; up: number; down: number }>;
}

export async function readStats(metrics: Metrics, connections: OpenConnections): Promise<Stats> {
  const [bytes, finished, matches, ruleBytes] = await Promise.all([
    metrics.bytes.get(),
    metrics.connections.get(),
    metrics.ruleHits.get(),
    metrics.ruleBytes.get(),
  ]);
  const open = connections.list();
  // Bytes of a request whose line is written are in the counters: added once, from there.
  const moving = open.filter((c) => !c.logged);
  const rules = new Map<string, Stats['rules'][number]>();
  const ruleOf = (name: string): Stats['rules'][number] => {
    let r = rules.get(name);
    if (!r) rules.set(name, (r = { rule: name, matches: 0, up: 0, down: 0 }));
    return r;
  };
  for (const v of matches.values) ruleOf(String(v.labels.rule)).matches += v.value;
  for (const v of ruleBytes.values) ruleOf(String(v.labels.rule))[v.labels.direction === 'up' ? 'up' : 'down'] += v.value;
  for (const c of moving) {
    if (c.rule === undefined) continue;
    const r = ruleOf(c.rule);
    r.up += c.up;
    r.down += c.down;
  }
  return {
    time: Date.now(),
    connections: { open: open.length, finished: sum(finished.values) },
    bytes: {
      up: sum(bytes.values, (l) => l.direction === 'up') + moving.reduce((n, c) => n + c.up, 0),
      down: sum(bytes.values, (l) => l.direction === 'down') + moving.reduce((n, c) => n + c.down, 0),
    },
    rules: [...rules.values()],
  };
}
