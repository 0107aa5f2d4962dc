// Reading a gateway's own counters, as /metrics would show them.
import type { Gateway } from '../../src/gateway.js';

/** The value of `name` for the series whose labels include `labels`; NaN when there is none. */
export async function metricValue(gw: Gateway, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = await gw.metrics.registry.getSingleMetric(name)?.get();
  const hit = metric?.values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
  return hit?.value ?? Number.NaN;
}

/** socksgate_limit_refusals_total for one limit. */
export const refusals = (gw: Gateway, limit: string): Promise<number> => metricValue(gw, 'socksgate_limit_refusals_total', { limit });
