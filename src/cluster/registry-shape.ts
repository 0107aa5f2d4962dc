// A worker's registry as it comes over IPC (getMetricsAsJSON's shape), checked before the
// primary keeps it: prom-client's AggregatorRegistry throws on a metric without an aggregator
// or on a sample without labels, and a registry kept for a worker gone is in every later sum,
// so one malformed message would fail every scrape from then on.
import type { Registry } from 'prom-client';

/** A worker's registry over IPC: what getMetricsAsJSON gives. */
export type WorkerMetrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>;

/** prom-client's aggregators (its `aggregators` export). */
const AGGREGATORS: ReadonlySet<unknown> = new Set(['sum', 'first', 'omit', 'average', 'min', 'max']);

export function isWorkerMetrics(x: unknown): x is WorkerMetrics {
  return Array.isArray(x) && x.every(isMetric);
}

function isMetric(x: unknown): boolean {
  if (!isRecord(x)) return false;
  const { name, help, type, aggregator, values } = x;
  return typeof name === 'string' && typeof help === 'string' && typeof type === 'string' && AGGREGATORS.has(aggregator) && Array.isArray(values) && values.every(isSample);
}

function isSample(x: unknown): boolean {
  // A NaN (an event-loop lag's mean before any sample) comes over JSON as null.
  if (!isRecord(x) || (typeof x.value !== 'number' && x.value !== null) || !isRecord(x.labels)) return false;
  if (x.metricName !== undefined && typeof x.metricName !== 'string') return false;
  return Object.values(x.labels).every((v) => typeof v === 'string' || typeof v === 'number');
}

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
