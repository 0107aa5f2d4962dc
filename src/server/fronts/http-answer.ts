// The HTTP front's one outcome → status mapping (PRODUCT.md "HTTP proxy"), its Basic
// credentials, and the short answers it writes itself.

import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { GatewayError, LimitError, ProtocolError, Rep, toRep, UpstreamRefusedError } from '../../errors.js';
import { EgressDeniedError } from '../../outbound/egress.js';
import { NoMemberMatchesError, PoolExhaustedError } from '../../outbound/pool-errors.js';
import { UpstreamAuthError, UpstreamUnreachableError } from '../../outbound/socks5-errors.js';
import { decodeCredential } from '../../protocol/charset.js';
import { refusalReason } from '../auth.js';
import { closeClient } from '../close.js';
import { clipForLog } from '../log-clip.js';
import { refusedLogins, type AccessRecord, type Snapshot } from '../context.js';
import type { Gone } from '../login-throttle.js';
import type { SessionParams } from '../request.js';

export const AUTH_REQUIRED_STATUS = 407;
const PROXY_AUTHENTICATE = 'Basic realm="socksgate"';

/**
 * A failure as an HTTP status: blocked 403, timeout 504, limits 429/503, malformed 400, the
 * rest 502. Only the client's own request is a 400: an upstream's 0x07 or 0x08 says what the
 * upstream could not do, an upstream failure (502).
 */
export function statusOf(err: unknown): number {
  // A blocked address is refused by a limit (auth_failures), not for its credentials: a 407
  // would have a browser ask again for a password that may well be right.
  if (err instanceof ProxyAuthError) return err.blocked ? 429 : AUTH_REQUIRED_STATUS;
  if (err instanceof LimitError) return err.gatewayFull ? 503 : 429;
  if (err instanceof ExpectationError) return 417;
  if (err instanceof UnsupportedCodingError) return 501;
  if (err instanceof VersionError) return 505;
  if (err instanceof ProtocolError) return 400;
  switch (toRep(err)) {
    case Rep.NOT_ALLOWED:
      return 403;
    case Rep.TTL_EXPIRED:
      return 504;
    default:
      return 502; // name not found, refused, unreachable, upstream failure
  }
}

const REP_TEXT: Readonly<Record<number, string>> = {
  [Rep.GENERAL_FAILURE]: 'upstream failure',
  [Rep.NOT_ALLOWED]: 'not allowed by the gateway rules',
  [Rep.NETWORK_UNREACHABLE]: 'network unreachable',
  [Rep.HOST_UNREACHABLE]: 'host unreachable or name not found',
  [Rep.CONNECTION_REFUSED]: 'connection refused',
  [Rep.TTL_EXPIRED]: 'connect timeout',
  [Rep.COMMAND_NOT_SUPPORTED]: 'not supported',
  [Rep.ADDRESS_TYPE_NOT_SUPPORTED]: 'address type not supported',
};

/**
 * An origin that took the request and then said nothing for idle_timeout (before its head or
 * within its body): 504 and rep 0x06 as a connect that timed out, but the client is told which.
 */
export class OriginIdleError extends GatewayError {
  constructor() {
    super('GW_ERR_ORIGIN_IDLE', 'origin idle timeout', Rep.TTL_EXPIRED);
  }
}

/**
 * Its client took none of the response for idle_timeout while the origin had more to send:
 * the origin's connection is idle only because the client's backpressure paused it.
 */
export class ClientStalledError extends GatewayError {
  constructor() {
    super('GW_ERR_CLIENT_STALLED', 'client stopped reading', Rep.TTL_EXPIRED);
  }
}

/** An origin that closed before the end of its response: 502 while none of its body went out. */
export class OriginCutError extends GatewayError {
  constructor() {
    super('GW_ERR_ORIGIN_CUT', 'origin closed before the end of its response', Rep.GENERAL_FAILURE);
  }
}

/** One short line saying why; never an internal message (it could name a member's URL). */
export function reasonOf(err: unknown): string {
  if (err instanceof ProxyAuthError) return err.message;
  if (err instanceof OriginIdleError) return 'origin did not answer in time';
  // The origin's doing, which on a direct route no "upstream failure" explains.
  if (err instanceof OriginCutError) return `bad gateway: ${err.message}`;
  if (err instanceof LimitError) return err.gatewayFull ? 'gateway full' : 'too many connections';
  if (err instanceof ExpectationError || err instanceof UnsupportedCodingError || err instanceof VersionError) return err.message;
  if (err instanceof ProtocolError) return `bad request: ${err.message}`;
  const rep = toRep(err);
  // The upstream's own refusal: the gateway's rules let the request through.
  if (err instanceof UpstreamRefusedError && rep === Rep.NOT_ALLOWED) return 'not allowed by the upstream proxy';
  // Not a rule of `rules`: egress.deny (SECURITY.md "SSRF through direct").
  if (err instanceof EgressDeniedError) return 'destination denied by the egress guard';
  // The session's tag filters left no member: the client's parameters, not the destination.
  if (err instanceof NoMemberMatchesError) return `no member matches ${err.filters}`;
  // The proxy itself failed: a bare "connection refused" or "connect timeout" reads as the site's.
  if (err instanceof UpstreamUnreachableError) return err.silent ? 'upstream proxy did not answer' : unreachable(rep);
  if (err instanceof PoolExhaustedError) return 'no usable pool member';
  if (err instanceof UpstreamAuthError) return 'upstream proxy refused the login';
  return REP_TEXT[rep] ?? 'upstream failure';
}

/** An upstream proxy not reached: how, when the reply code says more than that it failed. */
function unreachable(rep: Rep): string {
  return rep === Rep.GENERAL_FAILURE ? 'upstream proxy unreachable' : `upstream proxy unreachable: ${REP_TEXT[rep] ?? 'failed'}`;
}

/**
 * What the client is told of a failure on the origin's connection (a forwarded request's, a
 * WebSocket handshake's): a response node's parser refused (HPE_*) is the origin's doing,
 * which on a direct route no "upstream failure" explains.
 */
export function originReasonOf(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW') return 'bad gateway: origin response head too large';
  return code.startsWith('HPE_') ? `bad gateway: origin response did not parse (${code.slice(0, 40)})` : reasonOf(err);
}

/** An Expect other than 100-continue in an HTTP/1.1 request: 417, nothing dialed (RFC 9110 §10.1.1). */
export class ExpectationError extends ProtocolError {
  constructor(expect: string) {
    super(`expectation not supported: ${JSON.stringify(expect.slice(0, 100))}`);
  }
}

/** A request body in a transfer coding besides chunked: 501, nothing dialed (RFC 9112 §6.1). */
export class UnsupportedCodingError extends ProtocolError {
  constructor(codings: string) {
    super(`Transfer-Encoding not supported: ${JSON.stringify(codings.slice(0, 100))}`);
  }
}

/**
 * A request line claiming a major version other than 1: 505 (RFC 9112 §2.3), as Squid answers
 * it. node's parser takes HTTP/2.0 and HTTP/0.9 in a text request line; neither is what the
 * gateway speaks, and forwarding either as HTTP/1.1 would say the client said so.
 */
export class VersionError extends ProtocolError {
  constructor(version: string) {
    super(`HTTP/${version.slice(0, 10)} not supported`);
  }
}

/** Missing or wrong Proxy-Authorization: 407 (rep 0x02 in the access log). */
export class ProxyAuthError extends GatewayError {
  /** The name a refused login gave (its password is never kept). */
  readonly tried: string | undefined;
  /** Refused unchecked: the client's address is blocked for too many failed logins (429). */
  readonly blocked: boolean;

  constructor(message: string, tried?: string, blocked = false) {
    super('GW_ERR_PROXY_AUTH', message, Rep.NOT_ALLOWED);
    this.tried = tried;
    this.blocked = blocked;
  }
}

/**
 * A refused login is logged with the name it gave, as a SOCKS5 one is (who is guessing at
 * which account), and counted as no user's connection: anyone can send a configured name.
 * Cut to 255 bytes as RFC 1929 bounds a SOCKS5 one: Basic carries up to node's 16 KiB of header.
 */
export function noteRefusedLogin(record: AccessRecord, err: unknown): void {
  if (!(err instanceof ProxyAuthError) || err.tried === undefined) return;
  record.user = clipForLog(err.tried);
  refusedLogins.add(record);
}

/** A full response with a one-line body, for CONNECT refusals and client errors (the socket closes after it). */
export function rawResponse(status: number, line: string): string {
  const body = `${line}\n`;
  const auth = status === AUTH_REQUIRED_STATUS ? `Proxy-Authenticate: ${PROXY_AUTHENTICATE}\r\n` : '';
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
    `Content-Length: ${Buffer.byteLength(body)}\r\n${auth}Connection: close\r\n\r\n${body}`
  );
}

/** A refusal written on the socket itself (CONNECT, a WebSocket handshake): the connection closes after it. */
export function refuseRaw(client: Socket, record: AccessRecord, err: unknown): Rep {
  const status = statusOf(err);
  record.status = status;
  closeClient(client, rawResponse(status, reasonOf(err)));
  return toRep(err);
}

/** The same answer through node's response (absolute-form requests keep the connection alive). */
export function answer(res: ServerResponse, status: number, line: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `${line}\n`;
  const headers: Record<string, string | number> = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) };
  if (status === AUTH_REQUIRED_STATUS) headers['proxy-authenticate'] = PROXY_AUTHENTICATE;
  res.writeHead(status, headers);
  res.end(body);
}

export interface HttpIdentity {
  user?: string;
  sessionKey?: string;
  params?: SessionParams;
}

const ANONYMOUS: HttpIdentity = Object.freeze({});

/**
 * RFC 9110 §11.7.2 / RFC 7617: Proxy-Authorization Basic carries the same users as RFC 1929,
 * session parameters in the username. No auth configured: the header is ignored. Throws
 * ProxyAuthError for missing or wrong credentials (anonymous allowed only with allow_anonymous).
 * Synchronous when no password is checked: nothing to wait for on an open proxy.
 */
export function authenticate(snapshot: Snapshot, header: string | undefined, source?: string, gone?: Gone): HttpIdentity | Promise<HttpIdentity> {
  const auth = snapshot.config.auth;
  if (!auth) return ANONYMOUS;
  const creds = parseBasic(header);
  if (!creds) {
    if (header === undefined && auth.allow_anonymous) return ANONYMOUS;
    throw new ProxyAuthError(header === undefined ? 'proxy authentication required' : 'malformed Proxy-Authorization');
  }
  return verified(snapshot, creds, source, gone);
}

async function verified(snapshot: Snapshot, creds: { user: string; password: string }, source: string | undefined, gone: Gone | undefined): Promise<HttpIdentity> {
  const result = await snapshot.auth.verify(creds.user, creds.password, source, gone);
  if (!result.ok) throw new ProxyAuthError(refusalReason(result), creds.user, result.blocked === true);
  const id: HttpIdentity = {};
  if (result.user !== undefined) id.user = result.user;
  if (result.sessionKey !== undefined) id.sessionKey = result.sessionKey;
  if (result.params) id.params = result.params;
  return id;
}

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header === undefined ? null : /^\s*basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  // RFC 7617 leaves the charset to the client (charset.ts): UTF-8, else ISO-8859-1.
  const text = decodeCredential(Buffer.from(m[1]!, 'base64'));
  const colon = text.indexOf(':');
  if (colon < 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
