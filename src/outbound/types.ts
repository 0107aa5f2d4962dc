import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { ResolvedAddress } from '../dns/types.js';
import type { Address } from '../protocol/types.js';

/** IPv4, IPv6 or a domain, as the client sent it. */
export type Destination = Address;

export interface OutboundContext {
  signal: AbortSignal;
  log: Logger;
  /** Crawler session key (from `USER-session-KEY`), else the username, else the client IP. */
  sessionKey: string;
  /** Addresses the router already resolved `dest.host` to: connect with them, do not look up again. */
  resolved?: ResolvedAddress[];
}

export interface Connection {
  socket: Socket;
  /** The pool member (URL or upstream name) that carried it, for the access log. */
  member?: string;
  /** BND.ADDR/BND.PORT for the client reply; defaults to the socket's local address. */
  bound?: Address;
  /** Called once when the relay ends: pools count open connections with it. */
  release?: () => void;
}

/** One way out. Rejects with a GatewayError whose `rep` goes to the client. */
export interface Outbound {
  readonly name: string;
  connect(dest: Destination, ctx: OutboundContext): Promise<Connection>;
  close(): Promise<void>;
}
