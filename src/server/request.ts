// What every front hands to the pipeline, and what the pipeline asks of a front in return.
// A front only translates: bytes (SOCKS5, SOCKS4/4a, an HTTP head) into a ProxyRequest, and
// the outcome back into its own reply. Routing, the outbound, the relay and the access log
// are written once, in pipeline.ts.

import type { Command, Protocol } from '../config/types.js';
import type { Rep } from '../errors.js';
import type { Address } from '../protocol/types.js';

/** Session parameters from the username (`alice-session-K1-country-de`). */
export type SessionParams = Readonly<Record<string, string>>;

export interface ProxyRequest {
  readonly protocol: Protocol;
  readonly command: Command;
  readonly dest: Address;
  /** The authenticated user (parameters stripped); absent when anonymous. */
  readonly user?: string;
  readonly params: SessionParams;
  /** Crawler session key, else the username, else the client IP. */
  readonly sessionKey: string;
  /** The client, after a trusted PROXY protocol header. */
  readonly source: Address;
}

/** What a front must be able to say back; each protocol's outcome mapping lives only here. */
export interface Front {
  /**
   * SOCKS5 REP 0x00 + BND, SOCKS4 0x5A, HTTP "200 Connection established". BIND grants twice.
   * `bound` gives BND.ADDR/BND.PORT; only a front whose reply carries them asks (HTTP's does
   * not, and is spared the getsockname).
   */
  granted(bound: () => Address): void;
  /** Tells the client why, ends the connection, and returns the SOCKS-style code for the log. */
  refused(err: unknown): Rep;
  /** Bytes the client sent behind its request: they reach the destination first. */
  remainder(): Buffer;
}
