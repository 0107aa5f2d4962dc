// The one adapter for how the `socks` package reports a failed handshake (SOCKS5 and
// SOCKS4 alike): it keeps neither the upstream's REP nor an errno, only a message. We read
// the REP back from that message here and nowhere else.

import { GatewayError, Rep, toRep, UpstreamRefusedError } from '../errors.js';

/**
 * We could not reach the upstream itself (TCP to it, or the hop before it in a chain).
 * The client gets the reply code of what really failed (ECONNREFUSED → 0x05, a timeout → 0x06,
 * a hop's 0x03–0x06 as it was). A hop's other answers about this upstream's address are no
 * answer about the client's destination: its 0x02 (a proxy's rules refusing the port, tinyproxy's
 * ConnectPort, squid's SSL_ports) would read as a rule blocking the destination (HTTP 403), its
 * 0x07 or 0x08 as the client's own request being wrong; they are 0x01, as a failed login to it is.
 */
export class UpstreamUnreachableError extends GatewayError {
  /** A proxy that took the connection and never answered, rather than one never reached. */
  readonly silent: boolean;
  /** `state`: `silent` for a proxy that took the connection and never answered. */
  constructor(upstream: string, cause: unknown, state: 'unreachable' | 'silent' = 'unreachable') {
    const why = cause instanceof Error ? cause.message : String(cause);
    super('GW_ERR_UPSTREAM_UNREACHABLE', `upstream "${upstream}" ${state}: ${why}`, reachingRep(cause), { cause });
    this.silent = state === 'silent';
  }
}

/** Why a proxy could not be reached, as a reply code: unreachable, refused, timed out, else 0x01. */
function reachingRep(cause: unknown): Rep {
  const rep = toRep(cause);
  return rep === Rep.NETWORK_UNREACHABLE || rep === Rep.HOST_UNREACHABLE || rep === Rep.CONNECTION_REFUSED || rep === Rep.TTL_EXPIRED ? rep : Rep.GENERAL_FAILURE;
}

/** The upstream spoke, but not in a way we can use (bad version, no method we offer, early close). */
export class UpstreamHandshakeError extends GatewayError {
  constructor(upstream: string, message: string, options?: ErrorOptions) {
    super('GW_ERR_UPSTREAM_HANDSHAKE', `upstream "${upstream}": ${message}`, Rep.GENERAL_FAILURE, options);
  }
}

/**
 * The upstream rejected our username/password (RFC 1929 §2, STATUS != 0) or offered no method
 * we can do. The client gets 0x01, not 0x02: 0x02 tells a client that *a rule* refused its
 * destination, while this is the gateway's own misconfiguration, and another destination
 * through the same route would fail the same way.
 */
export class UpstreamAuthError extends GatewayError {
  constructor(upstream: string, message: string, options?: ErrorOptions) {
    super('GW_ERR_UPSTREAM_AUTH', `upstream "${upstream}": ${message}`, Rep.GENERAL_FAILURE, options);
  }
}

// `socks` writes `Socks5Response[rep]` (its enum's member names) after the first prefix for the
// reply to our request, after the second for BIND's second reply (RFC 1928 §4; Dante answers a
// peer from another address than DST.ADDR with 0x02).
const REJECTED_PREFIX = 'Socks5 proxy rejected connection - ';
const REJECTED_PEER_PREFIX = 'Socks5 Proxy rejected incoming bound connection - ';
const REP_BY_NAME: Readonly<Record<string, Rep>> = {
  Failure: Rep.GENERAL_FAILURE,
  NotAllowed: Rep.NOT_ALLOWED,
  NetworkUnreachable: Rep.NETWORK_UNREACHABLE,
  HostUnreachable: Rep.HOST_UNREACHABLE,
  ConnectionRefused: Rep.CONNECTION_REFUSED,
  TTLExpired: Rep.TTL_EXPIRED,
  CommandNotSupported: Rep.COMMAND_NOT_SUPPORTED,
  AddressNotSupported: Rep.ADDRESS_TYPE_NOT_SUPPORTED,
};
// SOCKS4 (and 4a) has one refusal, 0x5B "rejected or failed": as ambiguous as SOCKS5's 0x01.
// 0x5C/0x5D are about identd and our USERID: the proxy refuses us, whatever the destination.
const SOCKS4_REJECTED = /^Socks4 Proxy rejected (?:incoming bound )?connection - \((\w+)\)$/;
const SOCKS4_AUTH = new Set(['Rejected', 'RejectedIdent']);
const AUTH_FAILURES = new Set([
  'Socks5 Authentication failed',
  'Received invalid Socks5 initial handshake (no accepted authentication type)',
]);

// `socks` weighs RFC 1929's two-byte login answer asynchronously: more bytes that came with
// it (a server sends none before our request) meet a state it has no step for, and it gives
// this. RFC 1929 §2's VER and STATUS, then anything: a malformed login answer.
const LOGIN_ANSWER_TOO_LONG = 'SocksClient internal error (this should not happen)';
const MALFORMED_LOGIN = 'malformed answer to our username/password login (RFC 1929 §2 answers 2 bytes)';

/**
 * Whether `socks` failed on the reply to our request: a refusal, or a reply whose VER is not 5,
 * which it reports in the same words (with the REP byte that follows as the reason).
 */
export function failedOnReply(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith(REJECTED_PREFIX);
}

/**
 * Turns whatever `SocksClient.createConnection` rejected with into a GatewayError.
 * Only handshake failures reach here: the TCP connection to the upstream is made by
 * the caller (so its errno survives), and timeouts and aborts are decided by the caller.
 */
export function fromSocksError(upstream: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  // Not the original as the cause: a SocksClientError carries the options, password included.
  const cause = new Error(message);
  const prefix = [REJECTED_PREFIX, REJECTED_PEER_PREFIX].find((p) => message.startsWith(p));
  if (prefix !== undefined) {
    // An unknown REP (> 0x08) prints as "undefined": RFC 1928 §6 lists no such code, so 0x01.
    const rep = REP_BY_NAME[message.slice(prefix.length)] ?? Rep.GENERAL_FAILURE;
    return new UpstreamRefusedError(upstream, rep, { cause });
  }
  const socks4 = SOCKS4_REJECTED.exec(message);
  if (socks4) {
    // Its own code in the line: "replied 1" alone reads as a SOCKS5 REP it never sent.
    if (socks4[1] === 'Failed') return new UpstreamRefusedError(upstream, Rep.GENERAL_FAILURE, { cause }, 'answered with SOCKS4 0x5B (rejected or failed)');
    if (SOCKS4_AUTH.has(socks4[1]!)) return new UpstreamAuthError(upstream, message, { cause });
  }
  if (AUTH_FAILURES.has(message)) return new UpstreamAuthError(upstream, message, { cause });
  if (message === LOGIN_ANSWER_TOO_LONG) return new UpstreamHandshakeError(upstream, MALFORMED_LOGIN, { cause });
  return new UpstreamHandshakeError(upstream, message, { cause });
}

/**
 * Where a chained upstream's failure began: through each hop that could not reach the next
 * (its cause) to the first one that failed on its own account. Bounded, as chains are.
 */
export function firstFailedHop(err: unknown): unknown {
  let e = err;
  for (let i = 0; i < 64 && e instanceof UpstreamUnreachableError && e.cause instanceof GatewayError; i++) e = e.cause;
  return e;
}

/**
 * Whether a failure is the upstream's own fault (unreachable, not speaking SOCKS, refusing our
 * credentials), as opposed to its verdict about the destination. Pools eject members and try
 * another one only for these.
 */
export function isUpstreamFault(err: unknown): boolean {
  return err instanceof UpstreamUnreachableError || err instanceof UpstreamHandshakeError || err instanceof UpstreamAuthError;
}

/**
 * The upstream's clear answer about the destination (0x02-0x08, an HTTP 403/404/504): the
 * member is alive and did its job, for requests and health checks alike. An ambiguous 0x01
 * says nothing either way.
 */
export function answeredAboutDestination(err: unknown): boolean {
  return err instanceof UpstreamRefusedError && err.rep !== Rep.GENERAL_FAILURE;
}
