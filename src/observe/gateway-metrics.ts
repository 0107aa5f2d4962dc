// Series read at scrape time from whatever snapshot is live: DNS cache counters and the
// state of every upstream and pool member. Labels come from names in the config only.

import type { DnsResolver } from '../dns/types.js';
import { collectStats, type UpstreamStats } from '../outbound/stats.js';
import type { Outbound } from '../outbound/types.js';
import type { Metrics } from './metrics.js';

/** What the scrape reads of the live snapshot. */
interface Scraped {
  readonly dns: DnsResolver;
  readonly outbounds: ReadonlyMap<string, Outbound>;
}

/** Counts that only grow: counters (`_total`), so rate() and increase() read them right. */
const COUNTS: ReadonlyArray<['attempts' | 'failures', string]> = [
  ['attempts', 'Connection attempts through the upstream, BINDs and UDP ASSOCIATEs included (not those their client gave up or an operator killed, nor those the gateway had no file descriptor for), each counted once it has ended; kept across reloads while the upstream (and each `via` hop behind it) or the pool member is unchanged, from 0 again once its type, host, port, credentials or chain change'],
  ['failures', 'Failed connection attempts through the upstream, counted as attempts are'],
];

/** States read now: gauges. */
const STATES: ReadonlyArray<['active' | 'healthy', string]> = [
  ['active', 'Relayed connections open through the upstream now, BINDs and UDP associations included until they end'],
  ['healthy', '1 when the upstream is in rotation, 0 when failing, ejected or banned'],
];

/** Every upstream and member with its labels: `pool` is "" for a stand-alone upstream. */
function everyUpstream(snapshot: Scraped): Array<{ labels: { upstream: string; pool: string }; s: UpstreamStats }> {
  const { upstreams, members } = collectStats(snapshot.outbounds);
  return [
    ...upstreams.map((s) => ({ labels: { upstream: s.name, pool: '' }, s })),
    ...members.map((s) => ({ labels: { upstream: s.name, pool: s.pool }, s })),
  ];
}

export function observeSnapshot(metrics: Metrics, current: () => Scraped): void {
  metrics.collectCounter('socksgate_dns_cache_total', 'DNS cache counters (hits, misses, negativeHits, evictions, inflightWaits, queries)', ['counter'], () =>
    Object.entries(current().dns.stats()).map(([counter, value]) => ({ labels: { counter }, value })),
  );
  for (const [field, help] of COUNTS) {
    // With `workers`, summed; a gone worker's stay in the sum (src/cluster/metrics.ts).
    metrics.collectCounter(`socksgate_upstream_${field}_total`, help, ['upstream', 'pool'], () =>
      everyUpstream(current()).map(({ labels, s }) => ({ labels, value: s[field] })),
    );
  }
  for (const [field, help] of STATES) {
    metrics.collect(
      `socksgate_upstream_${field}`,
      help,
      ['upstream', 'pool'],
      () => everyUpstream(current()).map(({ labels, s }) => ({ labels, value: Number(s[field]) })),
      // With workers, as /api/upstreams merges it: in rotation only where every worker has it.
      field === 'healthy' ? 'min' : 'sum',
    );
  }
  metrics.collect(
    'socksgate_upstream_banned',
    '1 while an operator ban takes the pool member out of rotation',
    ['upstream', 'pool'],
    () => collectStats(current().outbounds).members.map((m) => ({ labels: { upstream: m.name, pool: m.pool }, value: m.bannedUntil > 0 ? 1 : 0 })),
    'min', // with workers: banned while every worker holds the ban, as /api/upstreams says
  );
  metrics.collect(
    'socksgate_upstream_latency_seconds',
    'Connect latency through the upstream: a moving average of its recent successful connects (and of a pool member\'s health checks)',
    ['upstream', 'pool'],
    () => everyUpstream(current()).flatMap(({ labels, s }) => (s.latencyMs === undefined ? [] : [{ labels, value: s.latencyMs / 1000 }])),
    'average', // with workers: the workers' mean, as /api/upstreams gives it
  );
}
