// Printing the figures: one table, then each relay as a ratio to the others.
import { get } from 'node:http';
import { fmt } from './lib.js';

export interface Row {
  key: string;
  label: string;
  /** KiB/conn and lag: smaller is better (ratios still read value / value). */
  lowerIsBetter?: boolean;
}

export interface Column {
  name: string;
  values: Record<string, number | undefined>;
}

/** The median; of an even count (a round that failed leaves two), the mean of the middle two. */
export function median(xs: number[]): number {
  if (xs.length === 0) throw new Error('median: no values');
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function cell(v: number | undefined, key: string): string {
  if (v === undefined || !Number.isFinite(v)) return '–';
  return key === 'kib' || key === 'lag' ? fmt(v, 1) : fmt(v, 0);
}

/** The table, then `subject` as a ratio to each named column, and every column as a ratio to direct and to the bare relay. */
export function printTable(rows: Row[], columns: Column[], subject: string, against: Array<[string, string]>): void {
  const widths = [Math.max(...rows.map((r) => r.label.length)), ...columns.map((c) => Math.max(c.name.length, 9))];
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[0]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(['', ...columns.map((c) => c.name)]));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const r of rows) console.log(line([r.label, ...columns.map((c) => cell(c.values[r.key], r.key))]));
  const subj = columns.find((c) => c.name === subject);
  if (!subj) return;
  for (const [name, short] of against) {
    const base = columns.find((c) => c.name === name);
    if (!base) continue;
    const parts = rows
      .filter((r) => subj.values[r.key] !== undefined && base.values[r.key] !== undefined)
      .map((r) => `${r.key} ${(subj.values[r.key]! / base.values[r.key]!).toFixed(2)}×`);
    console.log(`${subject} / ${short}: ${parts.join(', ')}`);
  }
  for (const baseName of ['direct', 'bare Node relay']) {
    const base = columns.find((c) => c.name === baseName);
    if (!base) continue;
    console.log(`as a ratio to ${baseName}:`);
    for (const c of columns) {
      if (c === base) continue;
      const parts = rows
        .filter((r) => c.values[r.key] !== undefined && base.values[r.key] !== undefined)
        .map((r) => `${r.key} ${(c.values[r.key]! / base.values[r.key]!).toFixed(2)}`);
      if (parts.length > 0) console.log(`  ${c.name.padEnd(16)} ${parts.join(', ')}`);
    }
  }
}

/** GET the admin /metrics of a socksgate on 127.0.0.1 (bounded). */
export function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', timeout: 10_000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('metrics: no answer in 10 s')));
    req.on('error', reject);
  });
}

/** The value of one unlabelled sample in Prometheus text. */
export function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * prom-client samples the loop with a 10 ms timer (eventLoopMonitoringPrecision, left at its
 * default) and its percentiles are of the timer's whole interval: an idle gateway reads
 * 0.0101 s. The lag is what exceeds it (prom-client issue #370).
 */
export const LAG_SAMPLING_MS = 10;

/**
 * Event-loop lag p99 since the previous scrape, in ms, beyond the sampling interval:
 * prom-client's default metrics (monitorEventLoopDelay, reset at every collection), as
 * production scrapes it, less LAG_SAMPLING_MS. `raw` is the metric as it reads.
 */
export async function lagP99(metricsPort: number): Promise<{ raw: number; lag: number }> {
  const v = sample(await scrape(metricsPort), 'socksgate_nodejs_eventloop_lag_p99_seconds');
  if (v === undefined) throw new Error('no socksgate_nodejs_eventloop_lag_p99_seconds in /metrics');
  return { raw: v * 1000, lag: Math.max(0, v * 1000 - LAG_SAMPLING_MS) };
}
