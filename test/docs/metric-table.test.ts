// README.md's metrics table is what people write their queries and alerts from: every metric
// a gateway registers has a row, and the row names that metric's labels, no more and no fewer.
// (That every name the docs use is one a gateway exposes is test/config/deploy-examples.test.ts.)
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startGateway } from '../helpers/index.js';

interface Row {
  metrics: string[];
  labels: Set<string>;
}

/** The rows of the table under "## Logs and metrics"; `socksgate_process_*` (a prefix) left out. */
async function tableRows(): Promise<Row[]> {
  const readme = await readFile('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## Logs and metrics'), readme.indexOf('## Status page'));
  const rows: Row[] = [];
  for (const line of section.split('\n').filter((l) => l.startsWith('| `socksgate_'))) {
    const [names, labels] = line.split(' | ');
    const written = [...names!.matchAll(/`([a-z0-9_*]+)`/g)].map((m) => m[1]!);
    if (written.some((n) => n.includes('*'))) continue;
    // `_failures` after `socksgate_upstream_attempts` is socksgate_upstream_failures.
    const stem = written[0]!.slice(0, written[0]!.lastIndexOf('_'));
    const metrics = written.map((n) => (n.startsWith('_') ? stem + n : n));
    // Label names, not the values in parentheses after them; "(, `direction`)" adds a label.
    const bare = labels!.replace(/\((?!,)[^)]*\)/g, '');
    rows.push({ metrics, labels: new Set([...bare.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!)) });
  }
  return rows;
}

test("README's metrics table has a row for every metric, with the labels the gateway gives it", async (t) => {
  const rows = await tableRows();
  assert.ok(rows.length >= 15, `${rows.length} rows`);
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0, per_user: true } });
  t.after(() => gw.close());
  const declared = new Map<string, string[]>();
  for (const m of gw.gw.metrics.registry.getMetricsAsArray() as unknown as Array<{ name: string; labelNames?: string[] }>) {
    declared.set(m.name, [...(m.labelNames ?? [])]);
  }
  const documented = new Set(rows.flatMap((r) => r.metrics));
  assert.deepEqual([...declared.keys()].filter((n) => !documented.has(n)), [], 'metrics without a row');
  for (const { metrics, labels } of rows) {
    const given = new Set<string>();
    for (const name of metrics) {
      const names = declared.get(name);
      assert.ok(names, `${name}: the gateway registers no such metric`);
      for (const l of names) {
        assert.ok(labels.has(l), `${name}: label ${l} is not in its row (${[...labels].join(', ')})`);
        given.add(l);
      }
    }
    assert.deepEqual([...labels].filter((l) => !given.has(l)), [], `${metrics.join(', ')}: labels in the row that no metric of it has`);
  }
});
