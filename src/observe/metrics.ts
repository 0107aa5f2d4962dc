import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration } from 'prom-client';
import type { Config } from '../config/types.js';
import { droppedLogLines, LOG_PENDING_MAX_BYTES } from './logger.js';

/** socksgate_reloads_total: a worker's own reloads, or with `workers` the primary's count of them. */
export const RELOADS = {
  name: 'socksgate_reloads_total',
  help: 'Configuration reloads (SIGHUP, --watch, POST /api/reload) by result: ok or rejected',
  labelNames: ['result'] as const,
};

/** What one finished connection contributes to the counters (the access-log record's numbers). */
export interface SessionTotals {
  protocol: string;
  command: string;
  rep: string;
  rule?: string | undefined;
  user?: string | undefined;
  up: number;
  down: number;
}

/** The users `per_user` may name: the configured ones only, so a client cannot mint labels. */
const perUserCache = new WeakMap<Config, ReadonlySet<string> | null>();
function perUserSet(config: Config): ReadonlySet<string> | null {
  let set = perUserCache.get(config);
  if (set === undefined) {
    set = config.metrics?.per_user ? new Set(config.auth?.users.map((u) => u.username) ?? []) : null;
    perUserCache.set(config, set);
  }
  return set;
}

/** One labelled series of a tallied counter: its labels and what it counted so far. */
interface Series {
  readonly labels: Record<string, string>;
  value: number;
}

/** One label value's place in a tallied counter: the next label's values, or the series. */
class TallyLevel {
  readonly #next = new Map<string, TallyLevel>();
  series: Series | undefined;

  step(value: string): TallyLevel {
    let next = this.#next.get(value);
    if (!next) this.#next.set(value, (next = new TallyLevel()));
    return next;
  }
}

type Tallied = 'connections' | 'bytes' | 'ruleHits' | 'ruleBytes' | 'outboundRequests' | 'userConnections' | 'userBytes';

/** Prometheus metrics, all named socksgate_*. One instance per gateway, its own registry. */
export class Metrics {
  readonly registry = new Registry();
  /** The tallied counters' label names and series, by counter (filled in as each counter is made). */
  readonly #series = {} as Record<Tallied, { names: readonly string[]; list: Series[] }>;
  /** Every tallied series by counter and label values. */
  readonly #tallies: Partial<Record<Tallied, TallyLevel>> = {};
  readonly connections = this.#tallied('connections', {
    name: 'socksgate_connections_total',
    help: 'Finished client connections by protocol, command and reply code (SOCKS REP; for HTTP the REP its status stands for: 0 for a response from the destination)',
    labelNames: ['protocol', 'command', 'rep'] as const,
    registers: [this.registry],
  });
  readonly active = new Gauge({
    name: 'socksgate_connections_active',
    help: 'Client connections open now',
    registers: [this.registry],
  });
  readonly limitRefusals = new Counter({
    name: 'socksgate_limit_refusals_total',
    help: 'Clients refused by a limit (max_connections, max_handshakes, max_connections_per_source, user_max_connections, auth_failures)',
    labelNames: ['limit'] as const,
    registers: [this.registry],
  });
  /** Clients refused because max_connections was reached. */
  readonly refused = this.limitRefusals.labels('max_connections');
  readonly egressDenials = new Counter({
    name: 'socksgate_egress_denials_total',
    help: 'Destinations `direct` refused to dial because egress.deny holds their address, by command (connect, http, udp)',
    labelNames: ['command'] as const,
    registers: [this.registry],
  });
  readonly bytes = this.#tallied('bytes', {
    name: 'socksgate_bytes_total',
    help: 'Bytes relayed, up (client to destination) and down',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly ruleHits = this.#tallied('ruleHits', {
    name: 'socksgate_rule_matches_total',
    help: 'Routing decisions by rule and action',
    labelNames: ['rule', 'action'] as const,
    registers: [this.registry],
  });
  readonly ruleBytes = this.#tallied('ruleBytes', {
    name: 'socksgate_rule_bytes_total',
    help: 'Bytes relayed by connections the rule routed, up and down',
    labelNames: ['rule', 'direction'] as const,
    registers: [this.registry],
  });
  readonly outboundRequests = this.#tallied('outboundRequests', {
    name: 'socksgate_outbound_requests_total',
    help: 'Outbound connection attempts (CONNECT, HTTP requests, BIND; not those their client gave up or an operator killed; UDP associations are not in it) by outbound and result',
    labelNames: ['outbound', 'result'] as const,
    registers: [this.registry],
  });
  readonly originReuses = new Counter({
    name: 'socksgate_http_origin_reuses_total',
    help: 'Absolute-form HTTP requests sent on the origin connection kept from the request before on their client connection, not dialed (each still in socksgate_connections_total)',
    registers: [this.registry],
  });
  /** Run before each read of the UDP datagram counts: associations add what they relayed since. */
  readonly #udpReports = new Set<() => void>();
  readonly udpDatagrams = new Counter({
    name: 'socksgate_udp_datagrams_total',
    help: 'UDP datagrams relayed or dropped',
    labelNames: ['direction', 'result'] as const,
    registers: [this.registry],
    collect: () => {
      for (const report of this.#udpReports) report();
    },
  });
  /** With `workers`, the primary counts reloads (src/cluster/metrics.ts): left out of the workers' sum. */
  readonly reloads = new Counter({ ...RELOADS, aggregator: 'omit', registers: [this.registry] });
  readonly userConnections = this.#tallied('userConnections', {
    name: 'socksgate_user_connections_total',
    help: 'Finished client connections per configured user (metrics.per_user)',
    labelNames: ['user'] as const,
    registers: [this.registry],
  });
  readonly userBytes = this.#tallied('userBytes', {
    name: 'socksgate_user_bytes_total',
    help: 'Bytes relayed per configured user (metrics.per_user), up and down',
    labelNames: ['user', 'direction'] as const,
    registers: [this.registry],
  });
  readonly authRefusals = new Counter({
    name: 'socksgate_auth_refusals_total',
    help: 'Refused logins by reason (wrong credentials, or blocked after too many failures)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly unexpectedErrors = new Counter({
    name: 'socksgate_unexpected_errors_total',
    help: 'Errors that escaped every handler (logged; the process then drains briefly and exits to be restarted)',
    registers: [this.registry],
  });
  readonly logDrops = new Counter({
    name: 'socksgate_log_lines_dropped_total',
    help: `Log lines dropped because stdout did not keep up (${LOG_PENDING_MAX_BYTES / 1024 / 1024} MiB of lines already waiting)`,
    registers: [this.registry],
    collect() {
      this.reset();
      this.inc(droppedLogLines());
    },
  });
  readonly handshakeSeconds = new Histogram({
    name: 'socksgate_handshake_seconds',
    help: 'Time from accept to a complete request',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly connectSeconds = new Histogram({
    name: 'socksgate_connect_seconds',
    help: 'Time to open the outbound connection (for BIND, until the listener is open)',
    labelNames: ['outbound'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    registers: [this.registry],
  });

  readonly #up = this.#tally('bytes', 'up');
  readonly #down = this.#tally('bytes', 'down');
  readonly #connectTimes = new Map<string, Histogram.Internal<string>>();

  constructor(opts: { defaults?: boolean } = {}) {
    // Series that exist from the start read 0 rather than missing (rate() needs a first sample).
    this.refused.inc(0);
    // An alert on increase() of a series that first appears at 1 never fires for that first block.
    for (const reason of ['failed', 'blocked']) this.authRefusals.inc({ reason }, 0);
    this.limitRefusals.inc({ limit: 'auth_failures' }, 0);
    for (const command of ['connect', 'http', 'udp']) this.egressDenials.inc({ command }, 0);
    for (const result of ['ok', 'rejected']) this.reloads.inc({ result }, 0);
    if (opts.defaults) collectDefaultMetrics({ register: this.registry, prefix: 'socksgate_' });
  }

  /**
   * `report` adds counts kept elsewhere to udpDatagrams before every read (a scrape, the
   * API): prom-client hashes the labels on every inc(), too dear to pay per datagram.
   */
  onCollect(report: () => void): void {
    this.#udpReports.add(report);
  }

  offCollect(report: () => void): void {
    this.#udpReports.delete(report);
  }

  /** Counts one finished connection; per user only for users the config names. */
  sessionEnded(s: SessionTotals, config: Config): void {
    this.#tally('connections', s.protocol, s.command, s.rep).value++;
    this.#up.value += s.up;
    this.#down.value += s.down;
    if (s.rule !== undefined) {
      this.#tally('ruleBytes', s.rule, 'up').value += s.up;
      this.#tally('ruleBytes', s.rule, 'down').value += s.down;
    }
    const users = perUserSet(config);
    if (users && s.user !== undefined && users.has(s.user)) {
      this.#tally('userConnections', s.user).value++;
      this.#tally('userBytes', s.user, 'up').value += s.up;
      this.#tally('userBytes', s.user, 'down').value += s.down;
    }
  }

  /** One routing decision (every request). */
  ruleHit(rule: string, action: string): void {
    this.#tally('ruleHits', rule, action).value++;
  }

  /** One outbound connection attempt and how long it took. */
  outboundAttempt(outbound: string, ok: boolean, seconds: number): void {
    this.#tally('outboundRequests', outbound, ok ? 'ok' : 'fail').value++;
    let h = this.#connectTimes.get(outbound);
    if (!h) {
      h = this.connectSeconds.labels(outbound);
      this.#connectTimes.set(outbound, h);
    }
    h.observe(seconds);
  }

  /**
   * A counter whose series are plain numbers added to per connection and handed to prom-client
   * only when it is read (a scrape, /api/stats, a cluster's aggregation): prom-client hashes
   * the label values on every inc(), of a bound child too, a few per connection.
   */
  #tallied<L extends string>(counter: Tallied, config: CounterConfiguration<L>): Counter<L> {
    const list: Series[] = [];
    this.#series[counter] = { names: config.labelNames ?? [], list };
    return new Counter<L>({
      ...config,
      collect() {
        this.reset();
        for (const s of list) this.inc(s.labels as Partial<Record<L, string>>, s.value);
      },
    });
  }

  /**
   * The series of `counter` with these label values (in its labelNames' order), made on first
   * use. Found through one map per label value, keyed by strings that already exist (a rule's
   * name, a protocol): no key is built per call.
   */
  #tally(counter: Tallied, a: string, b?: string, c?: string): Series {
    let level = (this.#tallies[counter] ??= new TallyLevel());
    level = level.step(a);
    if (b !== undefined) level = level.step(b);
    if (c !== undefined) level = level.step(c);
    if (level.series) return level.series;
    const { names, list } = this.#series[counter];
    const values = [a, b, c];
    const labels: Record<string, string> = {};
    names.forEach((n, i) => (labels[n] = values[i]!));
    const series: Series = { labels, value: 0 };
    list.push(series);
    return (level.series = series);
  }

  /**
   * Adds a counter whose values are read at scrape time from counts kept elsewhere (the DNS
   * cache's). Not a gauge: with `workers`, a gone worker's counters stay in the primary's sum
   * (src/cluster/metrics.ts), its gauges do not, and a sum that drops reads as a reset.
   */
  collectCounter(name: string, help: string, labelNames: readonly string[], read: () => Array<{ labels: Record<string, string>; value: number }>): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, value } of read()) this.inc(labels, value);
      },
    });
  }

  /**
   * Adds a gauge whose value is read at scrape time (upstream health, UDP bytes held). With
   * `workers`, the primary's /metrics combines the workers' values with `aggregator`: a sum
   * unless the value is a state or a measure (healthy in every worker, a mean latency).
   */
  collect(
    name: string,
    help: string,
    labelNames: readonly string[],
    read: () => Array<{ labels: Record<string, string>; value: number }>,
    aggregator: 'sum' | 'min' | 'average' = 'sum',
  ): void {
    new Gauge({
      name,
      help,
      labelNames,
      aggregator,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, value } of read()) this.set(labels, value);
      },
    });
  }
}
