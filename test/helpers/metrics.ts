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

/**
 * The samples of counters (and of histograms: their buckets, sums and counts only grow) in
 * Prometheus text `before` that are lower, or gone, in `after`: what Prometheus would read as
 * a reset, over-counting in increase() and rate().
 */
export function countersDown(before: string, after: string): string[] {
  const grows = (text: string): Map<string, number> => {
    const types = new Map<string, string>();
    const samples = new Map<string, number>();
    for (const line of text.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)$/.exec(line);
      if (type) types.set(type[1]!, type[2]!);
      if (line === '' || line.startsWith('#')) continue;
      const series = line.slice(0, line.lastIndexOf(' '));
      const name = series.replace(/\{.*$/, '');
      const family = types.get(name) === undefined ? name.replace(/_(bucket|sum|count)$/, '') : name;
      const kind = types.get(family);
      if (kind === 'counter' || kind === 'histogram') samples.set(series, Number(line.slice(series.length + 1)));
    }
    return samples;
  };
  const later = grows(after);
  return [...grows(before)].flatMap(([series, value]) => {
    const now = later.get(series);
    return now !== undefined && now >= value ? [] : [`${series}: ${value} → ${now ?? 'gone'}`];
  });
}
