import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Prometheus metrics, all named socksgate_*. One instance per gateway, its own registry. */
export class Metrics {
  readonly registry = new Registry();
  readonly connections = new Counter({
    name: 'socksgate_connections_total',
    help: 'Finished client connections by command and reply code',
    labelNames: ['command', 'rep'] as const,
    registers: [this.registry],
  });
  readonly active = new Gauge({
    name: 'socksgate_connections_active',
    help: 'Client connections open now',
    registers: [this.registry],
  });
  readonly refused = new Counter({
    name: 'socksgate_connections_refused_total',
    help: 'Clients refused because max_connections was reached',
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'socksgate_bytes_total',
    help: 'Bytes relayed, up (client to destination) and down',
    labelNames: ['direction'] as const,
    registers: [this.registry],
  });
  readonly ruleHits = new Counter({
    name: 'socksgate_rule_matches_total',
    help: 'Routing decisions by rule and action',
    labelNames: ['rule', 'action'] as const,
    registers: [this.registry],
  });
  readonly outboundRequests = new Counter({
    name: 'socksgate_outbound_requests_total',
    help: 'Outbound connection attempts by outbound and result',
    labelNames: ['outbound', 'result'] as const,
    registers: [this.registry],
  });
  readonly udpDatagrams = new Counter({
    name: 'socksgate_udp_datagrams_total',
    help: 'UDP datagrams relayed or dropped',
    labelNames: ['direction', 'result'] as const,
    registers: [this.registry],
  });
  readonly unexpectedErrors = new Counter({
    name: 'socksgate_unexpected_errors_total',
    help: 'Errors that escaped every handler (logged; the process then drains briefly and exits to be restarted)',
    registers: [this.registry],
  });
  readonly handshakeSeconds = new Histogram({
    name: 'socksgate_handshake_seconds',
    help: 'Time from accept to a complete request',
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly connectSeconds = new Histogram({
    name: 'socksgate_connect_seconds',
    help: 'Time to open the outbound connection',
    labelNames: ['outbound'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10],
    registers: [this.registry],
  });

  constructor(opts: { defaults?: boolean } = {}) {
    if (opts.defaults) collectDefaultMetrics({ register: this.registry, prefix: 'socksgate_process_' });
  }

  /** Adds a gauge whose value is read at scrape time (DNS cache, upstream health). */
  collect(name: string, help: string, labelNames: readonly string[], read: () => Array<{ labels: Record<string, string>; value: number }>): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const { labels, value } of read()) this.set(labels, value);
      },
    });
  }
}
