import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Command, Config, Protocol } from '../config/types.js';
import type { Rep } from '../errors.js';
import type { Cancellation, DnsResolver } from '../dns/types.js';
import type { Metrics } from '../observe/metrics.js';
import type { ByteBudget } from '../outbound/byte-budget.js';
import type { EgressGuard } from '../outbound/egress.js';
import type { Outbound } from '../outbound/types.js';
import type { Address } from '../protocol/types.js';
import type { Router } from '../router/types.js';
import type { Authenticator } from './auth.js';
import type { LoginThrottle } from './login-throttle.js';
import type { ConnectionLimits } from './limits.js';
import type { Front, ProxyRequest } from './request.js';

/** Everything one config produces. A reload builds a new one and swaps the reference. */
export interface Snapshot {
  readonly config: Config;
  readonly router: Router;
  readonly outbounds: ReadonlyMap<string, Outbound>;
  readonly auth: Authenticator;
  /** The failed-login counts and blocks `auth` checks: carried from one snapshot to the next. */
  readonly throttle: LoginThrottle;
  readonly dns: DnsResolver;
  /** The compiled `egress.deny` that `direct` checks every dialed address against. */
  readonly egress: EgressGuard;
}

/** The fields of the one access-log line a session writes when it ends. */
export interface AccessRecord {
  /** The connection's id; first, where a child logger's binding would put it. */
  sid: number;
  /** "ip:port" after PROXY protocol; undefined when the peer's address was never known. */
  client?: string;
  protocol?: Protocol;
  user?: string;
  /** The `session` parameter of the login (`alice-session-K1`): which crawler identity, as the pool pins it. */
  session?: string;
  /** SOCKS4's USERID field: logged, never trusted. */
  userid?: string;
  cmd?: Command;
  dest?: string;
  rule?: string;
  outbound?: string;
  member?: string;
  rep?: Rep;
  /** HTTP front: the status the client got. */
  status?: number;
  up: number;
  down: number;
  /** UDP associations: datagrams each way and drops by reason. */
  udp?: { sent: number; received: number; dropped: Record<string, number> };
  error?: string;
  /** Milliseconds from accept (HTTP: from the request) to the line; set when it is written. */
  ms?: number;
}

/**
 * Records whose `user` is the name a refused login gave: logged so the attempt can be traced,
 * never counted as that user's (metrics.per_user), since anyone can send a configured name.
 */
export const refusedLogins = new WeakSet<AccessRecord>();

/** Every key an access record may have, checked complete by the compiler. */
const ACCESS_KEYS: Readonly<Record<keyof AccessRecord, true>> = {
  sid: true,
  client: true,
  protocol: true,
  user: true,
  session: true,
  userid: true,
  cmd: true,
  dest: true,
  rule: true,
  outbound: true,
  member: true,
  rep: true,
  status: true,
  up: true,
  down: true,
  udp: true,
  error: true,
  ms: true,
};
export const ACCESS_RECORD_KEYS: readonly string[] = Object.keys(ACCESS_KEYS);

/**
 * The access log's reason for a client that left while its request was served (a dial, a
 * BIND or a relay socket still to come): no reply went out, and the line says why.
 */
export const CLIENT_LEFT = 'client closed the connection';

/** What a command handler gets once the request is decoded (the client socket is paused). */
export interface CommandContext {
  readonly client: Socket;
  readonly front: Front;
  readonly request: ProxyRequest;
  readonly dest: Address;
  readonly user: string | undefined;
  readonly sessionKey: string;
  readonly source: string;
  /** The config the request runs on: the one live when it began. */
  readonly snapshot: Snapshot;
  /** The config live now (a reload since the request began shows here): what a UDP association routes a new destination on. */
  current(): Snapshot;
  readonly metrics: Metrics;
  readonly log: Logger;
  /** Aborted when the client goes away or the gateway stops. */
  readonly signal: AbortSignal;
  /** The same end, listened to without an AbortSignal (the connection itself). */
  readonly cancel: Cancellation;
  readonly record: AccessRecord;
  /** Bytes of UDP datagrams every association together may hold (each draws on it). */
  readonly udpBudget: ByteBudget;
  /** The client connection's limit slots: admission, and its user's bandwidth bucket. */
  readonly limits: ConnectionLimits;
  /** Names the socket on the far side, so that a kill ends both at once. */
  readonly attach: (remote: Socket, again?: boolean) => void;
}

/** Runs one command to its end. Throwing before the reply makes the session reply `toRep(err)`. */
export type CommandHandler = (ctx: CommandContext) => Promise<void>;

export { formatAddress } from '../protocol/address.js';

export function boundOf(socket: Socket): Address {
  return { host: socket.localAddress ?? '0.0.0.0', port: socket.localPort ?? 0 };
}
