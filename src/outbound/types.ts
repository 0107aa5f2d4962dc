import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Cancellation, ResolvedAddress } from '../dns/types.js';
import type { Address } from '../protocol/types.js';
import type { ByteBudget } from './byte-budget.js';
import type { AddressSet } from './egress.js';

/** IPv4, IPv6 or a domain, as the client sent it. */
export type Destination = Address;

export interface OutboundContext {
  signal: AbortSignal;
  /** The same end as `signal`, for a dial that only listens for it (happy eyeballs): no AbortSignal made. */
  cancel?: Cancellation;
  log: Logger;
  /** Crawler session key (from `USER-session-KEY`), else the username, else the client IP. */
  sessionKey: string;
  /** The authenticated user (session parameters stripped), for member username templates. */
  user?: string;
  /** Session parameters from the username (`-KEY-VALUE`), `session` and `lifetime` included. */
  params?: Readonly<Record<string, string>>;
  /** Addresses the router already resolved `dest.host` to: connect with them, do not look up again. */
  resolved?: ResolvedAddress[];
  /** The router's lookup of `dest.host` failed: whoever would resolve the name fails with this, not a second lookup. */
  unresolved?: unknown;
  /** UDP channels: the bytes of datagrams they may hold at once (their association's budget). */
  udpBudget?: ByteBudget;
  /** The deciding rule's own `cidrs`: `direct` may dial into them whatever the egress guard says. */
  egressLift?: AddressSet;
  /** What the client asked for (connect, http), for the egress-denial metric. */
  command?: string;
  /**
   * Reached as a `via` hop: a pool takes any of its members. The session's tag filters pick
   * the route's own member (they still fill templates): entry proxies carry no exit's tags.
   */
  viaHop?: boolean;
  /** Set by a pool to the member it is trying: a request that fails is logged with the member that last failed it. */
  member?: string;
  /** The local address the client's connection arrived at (unmapped): where a BIND the gateway serves itself listens. */
  arrivedAt?: string;
}

export interface Connection {
  socket: Socket;
  /** The pool member (URL or upstream name) that carried it, for the access log. */
  member?: string;
  /** BND.ADDR/BND.PORT for the client reply; defaults to the socket's local address. */
  bound?: Address;
  /** Called once when the relay ends: pools count open connections with it. */
  release?: () => void;
  /** Bytes the destination sent that could not wait in `socket` (it had already ended): the client gets them first. */
  head?: Buffer;
}

/** One way out. Rejects with a GatewayError whose `rep` goes to the client. */
export interface Outbound {
  readonly name: string;
  connect(dest: Destination, ctx: OutboundContext): Promise<Connection>;
  /** Capabilities: an outbound that can carry UDP or BIND has these; without one, the client gets 0x07. */
  openUdp?(ctx: OutboundContext): Promise<UdpChannel>;
  bind?(dest: Destination, ctx: OutboundContext): Promise<BindHandle>;
  /**
   * False for a destination that cannot be put to this upstream at all, known without asking
   * it (an IPv6 address to a SOCKS4 upstream); absent: any. A pool passes such a member over.
   */
  carries?(dest: Destination): boolean;
  /**
   * True when every connect to one destination goes the same way, to the same exit (`direct`):
   * a connection it gave may carry that client's next HTTP request to that destination. Absent
   * on every proxy: a pool picks its member request by request, and a provider's endpoint may
   * give each connection another exit address, which a kept connection would pin.
   */
  readonly samePath?: boolean;
  /** Health checks and timers begin only when the snapshot goes live: building does no I/O. */
  start?(): void;
  close(): Promise<void>;
}

/** One pool member as the config describes it. */
export interface MemberSpec {
  outbound: Outbound;
  /**
   * What the member dials through: a digest of its whole configuration, credentials and `via`
   * hops included. A reload keeps the member's record (health, counts) only while it is unchanged.
   */
  endpoint: string;
  /** Share of traffic relative to the other members (random, sticky); default 1. */
  weight: number;
  /** From `#k=v` on a URL, `tags` on an object member, or a members_file line. */
  tags: Readonly<Record<string, string>>;
  /** `{NAME}` placeholders in the member's username or password: the member serves any NAME filter. */
  placeholders?: readonly string[];
}

/** The datagram side of one UDP association through one outbound (RFC 1928 §7). */
export interface UdpChannel {
  /**
   * Sends `payload` to `dest` (`egressLift`: as in OutboundContext); never throws (a datagram
   * that cannot go is dropped and counted). `resolved`: the addresses the rules matched a name
   * by, which a channel that resolves names sends to instead of looking the name up again.
   */
  send(dest: Destination, payload: Buffer, egressLift?: AddressSet, resolved?: readonly ResolvedAddress[]): void;
  /** Answers from the far side; `from` is their real source address. */
  onMessage(listener: (from: Destination, payload: Buffer) => void): void;
  /** Local address datagrams leave from (for the access log). */
  readonly local?: Destination;
  /**
   * Datagrams the channel itself had to drop (name not resolved, full queue, unsolicited
   * answer). `bytes`: the payload of a client datagram `send` took but never handed to a socket.
   */
  onDrop?(listener: (reason: string, direction: 'up' | 'down', bytes?: number) => void): void;
  /** The far side ended the channel (an upstream closed its association's control connection): nothing more goes through it. */
  onEnd?(listener: () => void): void;
  close(): void;
}

/** A BIND (RFC 1928 §4) in progress: listening now, a peer later. */
export interface BindHandle {
  /** Where the peer must connect: the first reply's BND. */
  readonly listening: Destination;
  /** The first peer that connects (its address is the second reply's BND). */
  accepted(): Promise<{ socket: import('node:net').Socket; peer: Destination; head?: Buffer }>;
  close(): void;
}

