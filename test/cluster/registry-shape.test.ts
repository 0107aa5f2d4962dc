// A worker's registry as it comes over IPC: what the primary keeps for its sums, and what it lets be.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { AggregatorRegistry, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { isWorkerMetrics } from '../../src/cluster/registry-shape.js';

test("a worker's registry passes as JSON carries it, a NaN gauge included, and sums", async () => {
  const registry = new Registry();
  new Counter({ name: 'c_total', help: 'c', labelNames: ['rule'], registers: [registry] }).inc({ rule: 'lo' });
  new Histogram({ name: 'h_seconds', help: 'h', registers: [registry] }).observe(0.1);
  new Gauge({ name: 'g', help: 'g', registers: [registry], aggregator: 'average' }).set(Number.NaN);
  const sent: unknown = JSON.parse(JSON.stringify(await registry.getMetricsAsJSON()));
  assert.ok(isWorkerMetrics(sent));
  assert.match(await AggregatorRegistry.aggregate([sent, sent]).metrics(), /c_total\{rule="lo"\} 2/);
});

test('what prom-client could not sum, or would sum into nonsense, is no registry', () => {
  const metric = { name: 'x', help: 'x', type: 'counter', aggregator: 'sum', values: [{ value: 1, labels: {} }] };
  assert.ok(isWorkerMetrics([metric]));
  for (const odd of [null, 5, {}, [5], [null], [{ ...metric, aggregator: 'toString' }], [{ ...metric, help: 5 }], [{ ...metric, values: [{ value: 1 }] }], [{ ...metric, values: [null] }], [{ ...metric, values: [{ value: 1, labels: { a: {} } }] }]]) {
    assert.equal(isWorkerMetrics(odd), false, JSON.stringify(odd));
  }
});
