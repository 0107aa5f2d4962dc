import type { Socket } from 'node:net';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

export interface DnsStats {
  hits: number;
  misses: number;
  negativeHits: number;
  evictions: number;
  inflightWaits: number;
  queries: number;
}

export interface DnsResolver {
  /**
   * Addresses of `host`, in connection order (the preferred family first).
   * An IP literal is returned as is, without a query. Rejects with
   * NameNotResolvedError (REP 0x04) for NXDOMAIN, no data, timeout, SERVFAIL.
   */
  lookup(host: string): Promise<ResolvedAddress[]>;
  stats(): DnsStats;
  close(): void;
}

/**
 * What a dial listens to for being given up. An AbortSignal is one; so is a client connection,
 * which answers it without making an AbortController (microseconds and a KiB per dial).
 */
export interface Cancellation {
  readonly aborted: boolean;
  readonly reason: unknown;
  addEventListener(type: 'abort', listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: 'abort', listener: () => void): void;
}

export interface ConnectOptions {
  timeout: number; // ms for the whole attempt; ConnectTimeoutError (0x06) when it passes
  signal?: Cancellation;
}

/** Connects to the first reachable address (happy eyeballs); rejects with the last real error. */
export type TcpConnector = (addresses: ResolvedAddress[], port: number, opts: ConnectOptions) => Promise<Socket>;
