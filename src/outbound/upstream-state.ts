// What a stand-alone upstream (socks5, socks4, http; a chain's end) counts, and hands on at a
// reload that leaves it unchanged: as a pool hands on its members' records (member-state.ts),
// so its counters never start again at zero, connections opened before the reload are released
// into the open count the gauge reads, and its health and latency go on from where they were.

export class UpstreamState {
  /** A fingerprint of the upstream's config and of each `via` hop behind it when this record was made. */
  readonly endpoint: string;
  /** Attempts begun (BINDs and UDP associations included), those not yet ended, and failed ones. */
  attempts = 0;
  inFlight = 0;
  failures = 0;
  /** Relayed connections open now through the upstream. */
  active = 0;
  /** Upstream faults in a row: the lone upstream's health. */
  consecutiveFaults = 0;
  /** Connect latency (ms), a moving average of successful connects; undefined until measured. */
  latencyMs: number | undefined;

  constructor(endpoint: string) {
    this.endpoint = endpoint;
  }
}
