// What every absolute-form request passes before it is routed, forwarded or upgraded alike
// (http-forward.ts, http-websocket.ts): its source's place, its target, its framing, its
// login. One function, so that a check added for one kind of request reaches the other.

import type { IncomingMessage } from 'node:http';
import { ProtocolError } from '../../errors.js';
import type { ClientConnection } from '../client.js';
import { formatAddress, type AccessRecord, type CommandContext } from '../context.js';
import { clipForLog } from '../log-clip.js';
import type { Front } from '../request.js';
import { authenticate, ExpectationError, UnsupportedCodingError, VersionError } from './http-answer.js';
import { requestContext } from './context.js';
import { absoluteTarget, isHttp10, transferCodings, type AbsoluteTarget } from './http-message.js';

/** Where a request is refused before its target is known: the refusal needs a context, not a destination. */
const NOWHERE = { host: '', port: 0 };

/** A context to refuse a request with before it has passed its checks (no login, no destination yet). */
export function refusalContext(conn: ClientConnection, front: Front, record: AccessRecord): CommandContext {
  return requestContext(conn, front, record, { protocol: 'http', command: 'connect', dest: NOWHERE });
}

/**
 * The request's checks, in the order a refusal is chosen by: its source's connection limit, its
 * version (505), its target (400), its Host (400), its framing (400, 501), its expectation
 * (417), its login (407). A request that logged in ends the connection's handshake; one
 * refused stays in it, under handshake_timeout and max_handshakes, as a SOCKS5 client does
 * until its login (kept alive otherwise, a 407 every idle_timeout held a connection for ever
 * without a password). Throws the refusal; returns the request's context on the config live
 * now (a reload that revokes a password or blocks a destination reaches a kept-alive
 * connection's next request).
 */
export async function admitRequest(conn: ClientConnection, req: IncomingMessage, front: Front, record: AccessRecord): Promise<{ ctx: CommandContext; target: AbsoluteTarget }> {
  // The connection counts against its source from its first request on, answered or not:
  // a 407 or a 400 keeps it open, within the handshake deadline.
  const admitting = conn.limits.admitSource(conn.source.host, conn.current().config);
  if (admitting) await admitting;
  checkVersion(req);
  const target = absoluteTarget(req.url ?? '', req.method);
  record.dest = clipForLog(formatAddress(target.dest));
  // RFC 9112 §3.2: an HTTP/1.1 request without Host is a 400, though the target names the host.
  if (req.httpVersionMajor === 1 && req.httpVersionMinor === 1 && req.headers.host === undefined) throw new ProtocolError('HTTP/1.1 request without a Host header');
  // RFC 9112 §3.2: more than one Host, or one that is no host[:port], is a 400 too. node keeps
  // the first of several; a front or an origin that reads another would disagree on the host.
  const hosts = fieldCount(req, 'host');
  if (hosts > 1) throw new ProtocolError('more than one Host header');
  if (hosts === 1 && /[\s@/\\?#]/.test(req.headers.host ?? '')) throw new ProtocolError('malformed Host header');
  const framing = framingRefusal(req);
  if (framing) throw framing;
  if (unmetExpectation(req)) throw new ExpectationError(req.headers.expect ?? '');
  const snapshot = conn.current();
  const checked = authenticate(snapshot, req.headers['proxy-authorization'], conn.source.host, conn);
  const who = checked instanceof Promise ? await checked : checked;
  conn.handshakeDone();
  if (who.user !== undefined) record.user = who.user;
  const ctx = requestContext(conn, front, record, { protocol: 'http', command: 'connect', dest: target.dest, ...who }, snapshot);
  // Its admission (pipeline.ts) waits for the primary, with workers, only what its source's question left.
  conn.limits.carryTo(ctx.request);
  return { ctx, target };
}

/**
 * The request waits for 100 Continue before its body (RFC 9110 §10.1.1). An HTTP/1.0 request's
 * expectation is ignored: such a client knows no 1xx, and would take one for its answer (§15.2).
 */
export function expectsContinue(req: IncomingMessage): boolean {
  return !isHttp10(req) && /(^|,)\s*100-continue\s*(,|$)/i.test(req.headers.expect ?? '');
}

/**
 * The refusal a request's Transfer-Encoding earns, or undefined (none, or chunked alone in
 * HTTP/1.1). A refused one is faulty framing: the connection closes after the answer, for what
 * node read after it may be the rest of its body.
 * - RFC 9112 §6.1: HTTP/1.0 has no chunked coding. A proxy or balancer in front that reads such a
 *   body by its Content-Length, or to the close, sees the bytes that node's parser takes for the
 *   next request as this one's body (request smuggling).
 * - §6.3: no coding, or chunked not last, and the body's length cannot be known. node reads an
 *   empty Transfer-Encoding as none and frames by Content-Length; an origin that sees the field
 *   may not.
 * - §6.1: a coding before chunked is one the gateway does not apply or remove (501), as Squid,
 *   nginx and Apache refuse it; an origin may not know it either and read the body otherwise.
 */
function framingRefusal(req: IncomingMessage): ProtocolError | undefined {
  const codings = transferCodings(req);
  if (codings === undefined) return undefined;
  if (isHttp10(req)) return new ProtocolError('Transfer-Encoding in an HTTP/1.0 request');
  if (codings.at(-1) !== 'chunked') return new ProtocolError('Transfer-Encoding does not end in chunked');
  if (codings.length > 1) return new UnsupportedCodingError(codings.join(', '));
  return undefined;
}

/** A request refused for its Transfer-Encoding (framingRefusal): its connection closes after the answer. */
export function faultyFraming(req: IncomingMessage): boolean {
  return framingRefusal(req) !== undefined;
}

/** An HTTP/1.1 request expecting something other than 100-continue: nothing the gateway can meet. */
function unmetExpectation(req: IncomingMessage): boolean {
  return req.headers.expect !== undefined && !isHttp10(req) && !expectsContinue(req);
}

/** Throws VersionError for a request line claiming a major version other than 1 (CONNECT too). */
export function checkVersion(req: IncomingMessage): void {
  if (req.httpVersionMajor !== 1) throw new VersionError(req.httpVersion);
}

/** How many `name` (lower-case) fields the request has. */
function fieldCount(req: IncomingMessage, name: string): number {
  let n = 0;
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name) n++;
  return n;
}
