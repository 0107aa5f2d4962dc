// Absolute-form requests (RFC 9112 §3.2.2): each one routed on its own through the pipeline's
// route and outbound, forwarded to the origin over the outbound's socket with hop-by-hop
// headers removed (RFC 9110 §7.6.1), bodies streamed both ways with backpressure (pipe).
// The client connection stays alive for the next request, and so may the origin connection,
// for the client's next request on the same path (http-origin-slot.ts).

import { request as httpRequest, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import { LimitError, ProtocolError, Rep, toRep } from '../../errors.js';
import { guardErrors } from '../../outbound/early-data.js';
import type { Connection } from '../../outbound/types.js';
import { IdleHold, limitReader } from '../bandwidth.js';
import type { ClientConnection } from '../client.js';
import { closeClient } from '../close.js';
import type { CommandContext, Snapshot } from '../context.js';
import { admit, openConnect, refuse } from '../pipeline.js';
import { route, type Routed } from '../route.js';
import { consumed, resetSocket } from '../relay.js';
import type { Front } from '../request.js';
import { admitRequest, expectsContinue, faultyFraming, refusalContext } from './http-admission.js';
import { answer, ClientStalledError, noteRefusedLogin, OriginCutError, OriginIdleError, originReasonOf, rawResponse, reasonOf, statusOf } from './http-answer.js';
import { answerAsFinal, hopsLeft, oneHopLess } from './http-max-forwards.js';
import { keepOrigin, keptConnectionFailed, pathKey, replayable, takeOrigin } from './http-origin-slot.js';
import { endToEnd, isHttp10, passInterim, reasonPhrase, responseFields, transferCodings, unusableResponse, type AbsoluteTarget, type InformationEvent } from './http-message.js';
import { giveUp } from '../../outbound/give-up.js';
import { EMPTY } from '../../protocol/constants.js';

/** Methods node's client sends without a body when it is given no length (lib/_http_client.js); it chunks all others. */
const UNFRAMED_BY_NODE = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
/**
 * The largest origin response head passed on (Squid's reply_header_max_size). node's client
 * default, 16 KiB, made a 502 of real responses with a long Content-Security-Policy or many
 * cookies, which browsers and curl take as they are.
 */
export const MAX_RESPONSE_HEAD = 64 * 1024;

/**
 * Requests whose body stopped parsing (a bad chunk size): node's parser tells the front, never
 * the request, which would wait for the rest of its body, and the origin with it, until
 * idle_timeout. The front records it here; the request is answered 400 in its turn, or in
 * the middle of its relay, and the connection closes after it.
 */
const malformed = new WeakMap<IncomingMessage, ProtocolError>();
/** The relay of each request whose body is being forwarded now: how it is cut short. */
const relaying = new WeakMap<IncomingMessage, (err: ProtocolError) => void>();

/** The front's word that the rest of `req`'s body did not parse (`code`: node's parser error). */
export function bodyDidNotParse(req: IncomingMessage, code: string): void {
  const err = new ProtocolError(`request body did not parse (${code})`);
  malformed.set(req, err);
  relaying.get(req)?.(err);
}

/** The error of a body that did not parse, the connection then marked to close after its answer. */
function bodyError(conn: ClientConnection, req: IncomingMessage, res: ServerResponse): ProtocolError | undefined {
  const err = malformed.get(req);
  if (err === undefined) return undefined;
  conn.closing = true;
  res.shouldKeepAlive = false;
  return err;
}

export async function forward(conn: ClientConnection, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // An answer before this one was the connection's last (to an HTTP/1.0 client, a response
  // without a length ends at the close): node never hands this response the socket, so it
  // could never finish. Neither it nor anything behind it is served, as after a 431.
  if (res.socket === null && !res.destroyed && !conn.socket.destroyed) {
    conn.closing = true;
    req.resume();
    return;
  }
  const started = performance.now();
  const record = conn.newRecord('http');
  record.cmd = 'connect';
  if (res.destroyed || conn.socket.destroyed) {
    // Pipelined behind requests the client did not wait for: nobody reads this answer.
    req.resume();
    record.error = 'client closed the connection';
    conn.logRequest(record, started);
    return;
  }
  const front: Front = {
    granted: () => {},
    refused(err) {
      record.status = statusOf(err);
      answer(res, record.status, reasonOf(err));
      return toRep(err);
    },
    remainder: () => EMPTY,
  };
  let ctx = refusalContext(conn, front, record);
  let target: AbsoluteTarget;
  let origin: Connection;
  let routed: Routed;
  /** What a kept origin connection must match to carry this request; undefined: none is kept. */
  let key: string | undefined;
  let reused = false;
  try {
    ({ ctx, target } = await admitRequest(conn, req, front, record));
    const cut = bodyError(conn, req, res);
    if (cut) throw cut; // nothing is dialed for a request that cannot be sent whole
    if (hopsLeft(req) === 0) {
      // Its last hop is this one: answered here, nothing routed or dialed (RFC 9110 §7.6.2).
      req.resume();
      record.status = 200;
      record.rep = Rep.SUCCEEDED;
      answerAsFinal(req, res);
      await done(res);
      conn.logRequest(record, started);
      return;
    }
    const admitting = admit(ctx);
    if (admitting) await admitting;
    routed = await route(ctx, 'connect');
    key = pathKey(ctx, routed.decision.rule, routed.outbound);
    // A request that could not be sent again, were the kept connection closed under it, gets
    // a new one (RFC 9112 §9.3.1: no automatic retry of a non-idempotent request).
    const kept = key === undefined || !replayable(req) ? undefined : takeOrigin(conn, key, ctx.snapshot);
    if (kept) {
      ctx.attach(kept.socket, true);
      conn.metrics.originReuses.inc();
    }
    origin = kept ?? (await openConnect(ctx, routed));
    reused = kept !== undefined;
    const late = bodyError(conn, req, res);
    if (late) {
      giveUp(origin);
      throw late;
    }
  } catch (err) {
    noteRefusedLogin(record, err);
    // A client waiting for 100 Continue sends no body: the connection ends with the answer
    // (whether the body follows anyway is the client's choice, and nothing could tell), and
    // what it pipelined behind is not served: node never gives those responses the socket,
    // so one served anyway would wait for its response to finish for ever. A connection its
    // source has no room for ends with its 429 too: kept open, it would hold a place in the
    // gateway that counts against nobody. So does a request whose framing cannot be trusted:
    // what node read after it as a request may be the rest of its body.
    if (expectsContinue(req) || faultyFraming(req) || (err instanceof LimitError && err.limit === 'max_connections_per_source')) {
      res.shouldKeepAlive = false;
      conn.closing = true;
    }
    req.resume(); // a body nobody forwards is read and dropped, so the next request can follow
    refuse(ctx, err);
    await done(res);
    conn.logRequest(record, started);
    return;
  }
  record.rep = Rep.SUCCEEDED;
  if (!leftWhileDialed(conn, res, origin, record)) {
    if (expectsContinue(req)) res.writeContinue();
    // The idle wait is the config's this request was routed on, not the one the connection began under.
    const idleTimeout = ctx.snapshot.config.limits.idle_timeout;
    const keep = key === undefined ? undefined : { key, snapshot: ctx.snapshot };
    const outcome = await relayMessage(conn, req, res, target, origin, record, idleTimeout, keep, reused);
    if (outcome !== undefined) await sendAgain(conn, req, res, target, ctx, routed!, idleTimeout, keep, outcome);
  }
  conn.logRequest(record, started);
}

/**
 * A kept connection the origin closed as the request went out on it (its keep-alive timeout
 * met ours), or that gave stray bytes where the response should begin, before any of the
 * response (an interim one included): a request without a body, idempotent, is sent again
 * on a new connection, as node's agent lets a client do and browsers do (RFC 9112 §9.3.1).
 */
async function sendAgain(
  conn: ClientConnection,
  req: IncomingMessage,
  res: ServerResponse,
  target: AbsoluteTarget,
  ctx: CommandContext,
  routed: Routed,
  idleTimeout: number,
  keep: Keep | undefined,
  first: Sent,
): Promise<void> {
  const { record } = ctx;
  // The line's counts, should no second send go out (its own replace them when one does).
  // Not set while the new connection relays: a record at 0 is what the connections list
  // reads as "count the attached socket live".
  const firstCounts = (): void => {
    record.up = first.up;
    record.down = first.down;
  };
  record.rep = undefined;
  record.error = undefined;
  let origin: Connection;
  try {
    origin = await openConnect(ctx, routed);
  } catch (err) {
    firstCounts();
    refuse(ctx, err);
    return done(res);
  }
  record.rep = Rep.SUCCEEDED;
  if (leftWhileDialed(conn, res, origin, record)) return firstCounts();
  await relayMessage(conn, req, res, target, origin, record, idleTimeout, keep, false);
}

/** The client left while the origin was being dialed: nobody reads the answer, and the connection goes. */
function leftWhileDialed(conn: ClientConnection, res: ServerResponse, origin: Connection, record: ClientConnection['record']): boolean {
  if (!res.destroyed && !conn.socket.destroyed) return false;
  giveUp(origin);
  record.error ??= 'client closed the connection';
  return true;
}

/** Resolves once the response is complete or cut off (at once when it already is). */
function done(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => finished(res, () => resolve()));
}

/** Where a connection that ends its response cleanly may be kept for the client's next request. */
interface Keep {
  key: string;
  snapshot: Snapshot;
}

/** relayMessage's word that the request did not reach the origin on a kept connection, and may be sent again: what that send moved. */
interface Sent {
  up: number;
  down: number;
}

/**
 * One request to the origin and its response back; resolves when the client's response is
 * done, or with what it sent and read (nothing answered) when `reused` connection turned out closed
 * before any of the response, for a request that can be sent again. With `keep`, a connection
 * whose response ends cleanly is kept for the client's next request rather than closed.
 */
function relayMessage(
  conn: ClientConnection,
  req: IncomingMessage,
  res: ServerResponse,
  target: AbsoluteTarget,
  origin: Connection,
  record: ClientConnection['record'],
  idleTimeout: number,
  keep: Keep | undefined,
  reused: boolean,
): Promise<void | Sent> {
  const socket = origin.socket;
  if (origin.head?.length && !socket.readableEnded) socket.unshift(origin.head);
  origin.head = undefined; // a kept connection's next request finds its stream as the last left it
  // Counted from here, as the relay counts: through an upstream the socket's totals already
  // hold the proxy handshake, and bytes read with its reply but not yet consumed are the
  // origin's (in the stream's buffer, counted once they are read from it).
  const upFrom = socket.bytesWritten;
  const downFrom = consumed(socket);
  /** What this send has moved to and from the origin so far. */
  const moved = (): Sent => ({ up: socket.bytesWritten - upFrom, down: consumed(socket) - downFrom });
  // The origin's socket also goes quiet when the client stops reading: the pipe pauses it
  // while the response waits for the client to drain. That stall is the client's.
  const onIdle = (): void => void socket.destroy(res.writableNeedDrain ? CLIENT_STALLED : ORIGIN_IDLE);
  socket.setTimeout(idleTimeout, onIdle);
  // RFC 9112 §3.2.2: Host is the request target's authority, whatever the client's Host said.
  const hops = hopsLeft(req);
  const fields = endToEnd(req.rawHeaders).filter(([k]) => k.toLowerCase() !== 'host');
  const headers = hops === undefined ? fields : oneHopLess(fields, hops);
  headers.unshift(['Host', target.authority]);
  // node's client says "close" unless told otherwise: asked to stay open when it may be kept.
  if (keep) headers.push(['Connection', 'keep-alive']);
  // A chunked body stays chunked (node's client would send it unframed for GET, DELETE and
  // the like), said one way only: admitRequest let through chunked alone, however spelled.
  if (req.headers['transfer-encoding'] !== undefined) headers.push(['Transfer-Encoding', 'chunked']);
  // No Content-Length and no Transfer-Encoding: no body (RFC 9112 §6.3). node's client would
  // give a POST, PUT or PROPFIND an empty chunked one, which an origin may refuse (411, 501):
  // it is told the length instead, as RFC 9110 §8.6 asks of a client sending such a method.
  else if (req.headers['content-length'] === undefined && !UNFRAMED_BY_NODE.has(req.method ?? '')) headers.push(['Content-Length', '0']);
  // node's client frees a connection whose response ended and that both sides left open
  // (lib/_http_client.js, responseKeepAlive: its listeners and parser are gone from it).
  // Its 'error' listener goes too, and the slot's come only once the client has taken the
  // whole response, which a slow one may take long to: a reset meanwhile, or the idle timer's
  // destroy, must close the connection, not end the gateway as an unhandled error. Paused
  // until then, so bytes the origin sends unasked meanwhile wait for the slot, which closes
  // the connection for them, rather than flowing to nobody.
  let freed = false;
  const onFree = (): void => {
    freed = true;
    guardErrors(socket);
    socket.pause();
  };
  if (keep) socket.once('free', onFree);

  /** Settled: answered, or given up to be sent again; whatever reports after is too late. */
  let over = false;
  /** The response's framing cannot be trusted for what follows it on the connection: never kept. */
  let faulty = false;
  const finish = (): void => {
    ({ up: record.up, down: record.down } = moved());
    socket.off('timeout', onIdle);
    socket.off('free', onFree);
    const clientStays = res.writableFinished && res.shouldKeepAlive && !conn.closing && !conn.socket.destroyed;
    if (keep && freed && !faulty && clientStays && record.error === undefined && req.complete && !socket.destroyed) {
      return keepOrigin(conn, keep.key, keep.snapshot, origin, idleTimeout);
    }
    giveUp(origin);
  };
  let out: ClientRequest;
  try {
    out = httpRequest({ method: req.method, path: target.path, headers: headers.flat(), createConnection: () => socket, setHost: false, maxHeaderSize: MAX_RESPONSE_HEAD });
  } catch (err) {
    // Nothing node's server let through should be refused by its client; if it is, 502.
    record.error ??= err instanceof Error ? err.message : String(err);
    req.resume();
    finish();
    record.status = 502;
    record.rep = Rep.GENERAL_FAILURE;
    answer(res, 502, 'bad gateway: the request could not be forwarded');
    return done(res);
  }
  // node's client sends the fields it is given as an array at once, our "Connection:
  // keep-alive" among them, then, having no agent, marks itself to close after the response
  // all the same: told again, it frees the connection once the response ends (keep-alive on
  // both sides), as it does for an agent.
  if (keep) out.shouldKeepAlive = true;
  // node's client keeps the first thousand fields of a response and drops the rest silently:
  // a coding or a Connection field past them would go unchecked. The head is bounded in bytes
  // (MAX_RESPONSE_HEAD), so every field of it is read.
  out.maxHeadersCount = 0;
  // An upstream's stream comes paused (it keeps the bytes that came with its reply), and
  // node's client only listens for 'data': it would never see the response.
  out.once('socket', (s) => s.resume());
  /** An interim response (a 103, a 100) came, passed on or not: the request reached the origin, and is not sent again. */
  let interim = false;
  out.on('information', (info: InformationEvent) => {
    interim = true;
    passInterim(req, res, info);
  });
  // Per-user bandwidth, as the relay applies it: bodies both ways charge the user's bucket.
  const throttle = conn.limits.throttle;
  // The origin's idle timer is held off while either body waits out the user's debt.
  const idle = new IdleHold(socket, idleTimeout);
  const badGateway = (why: string): void => {
    record.error ??= why;
    socket.destroy();
    record.status = 502;
    record.rep = Rep.GENERAL_FAILURE;
    answer(res, 502, `bad gateway: ${why}`);
  };
  let response: IncomingMessage | undefined;
  /** Bytes of the origin's body have been passed on: the head went out with the first of them. */
  let bodyStarted = false;
  return new Promise((resolve) => {
    /**
     * The kept connection failed the request before any of its response: closed under it, or
     * bytes before the response that no response begins with (what the origin sent after the
     * last one, a body after its answer to a HEAD, reaching us only now). It goes again on a new one.
     */
    const again = (err: Error): boolean => {
      // `reused` says the request is replayable too: no other rides a kept connection.
      if (!reused || response !== undefined || interim || res.headersSent || !keptConnectionFailed(err)) return false;
      // Not for a client that is gone, or killed (which closed the kept connection itself):
      // nobody would read the answer, and the line keeps its reason.
      if (conn.socket.destroyed || res.destroyed || conn.aborted) return false;
      over = true;
      record.error = undefined;
      const sent = moved();
      relaying.delete(req);
      req.unpipe(out);
      socket.off('timeout', onIdle);
      giveUp(origin, err);
      resolve(sent);
      return true;
    };
    out.on('response', (ores: IncomingMessage) => {
      response = ores;
      const status = ores.statusCode ?? 0;
      const unusable = unusableResponse(ores, req.method);
      if (unusable !== undefined) return badGateway(unusable);
      // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing; the message is
      // processed, then the connection closed. A hop between that reads it as HTTP/1.0 takes the
      // body to the close: what follows on the connection would be framed two ways.
      if (transferCodings(ores) !== undefined && isHttp10(ores)) faulty = true;
      record.status = status;
      try {
        res.writeHead(status, reasonPhrase(ores.statusMessage), responseFields(status, ores.rawHeaders).flat());
      } catch (err) {
        return badGateway(`origin response not forwardable (${err instanceof Error ? err.message : String(err)})`);
      }
      ores.once('data', () => (bodyStarted = true));
      ores.pipe(res);
      if (throttle) limitReader(ores, res, throttle, idle);
      // node's client reports an origin that closes (a FIN, no error) before the end of its
      // body only here: it is the same failure as a reset. (A client that left first has the
      // origin's connection closed under it: nothing to answer.)
      ores.on('error', () => {
        if (!res.destroyed) afterHead(ORIGIN_CUT);
      });
    });
    /** A failure once the origin's head is in: answered once (out and its response may both report one). */
    let failed = false;
    const afterHead = (err: Error): void => {
      if (failed) return;
      failed = true;
      record.error ??= err.message;
      if (response?.complete) {
        // Bytes after a complete response (past its Content-Length, a body on a 204): the
        // response goes out whole; the origin's connection is done, and so is the client's.
        // Its head is already made, keep-alive, so the close follows its last byte, and
        // nothing pipelined behind it is served.
        conn.closing = true;
        const client = conn.socket;
        if (res.writableFinished) closeClient(client);
        else res.once('finish', () => closeClient(client));
      } else if (!bodyStarted) {
        // The head parsed, what follows did not (a bad chunk size: 502) or never came (an
        // origin silent for idle_timeout: 504, as before its head): nothing of it has reached
        // the client yet, so it gets that answer in its place, and the connection closes.
        record.status = statusOf(err);
        record.rep = toRep(err);
        const client = res.socket;
        if (client && !client.destroyed) closeClient(client, rawResponse(record.status, originReasonOf(err)));
        else res.destroy();
      } else {
        // Cut in the middle of the body: only the end of the connection can say so. Without a
        // Content-Length, that end may be the body's own (to an HTTP/1.0 client it is): a FIN
        // would pass what came for the whole body, a reset does not (RFC 9112 §8).
        const client = res.socket;
        if (client && !client.destroyed && response?.headers['content-length'] === undefined) resetSocket(client);
        else res.destroy();
      }
    };
    out.on('error', (err: Error) => {
      if (over) return;
      if (res.headersSent) return afterHead(err);
      if (again(err)) return;
      record.error ??= err.message;
      // The client is gone (it left, or was killed, which also cut the origin): no answer
      // reaches it, and none is logged as given.
      if (res.socket === null || res.socket.destroyed) return res.destroy();
      record.status = statusOf(err);
      record.rep = toRep(err);
      answer(res, record.status, originReasonOf(err));
    });
    // Closed with no response and no error: node's client does this on a 101 it did not
    // ask for (it hands the socket to nobody). The client is not left waiting.
    out.on('close', () => {
      if (over) return;
      if (!res.headersSent && !res.destroyed) badGateway('origin closed without a response');
    });
    // A body that stops parsing on the way: the origin connection goes, and out's 'error' answers.
    relaying.set(req, (err) => {
      bodyError(conn, req, res);
      socket.destroy(err);
    });
    req.pipe(out);
    if (throttle) limitReader(req, out, throttle, idle);
    // A body still to come, none of it here yet (a slow upload, a client waiting for the 100
    // Continue just sent): node's client would hold the head until the first body byte, and the
    // origin could neither answer early (a 413, a 401) nor be told apart from a silent one.
    if (!req.complete && req.readableLength === 0) out.flushHeaders();
    void done(res).then(() => {
      if (over) return;
      over = true;
      relaying.delete(req);
      finish();
      // The client went away before its response was whole (or had begun): without a reason
      // the line would read as a request served.
      if (!res.writableFinished) record.error ??= 'client closed the connection';
      // An answer before the whole request body (a 413 or a redirect on an upload): the rest
      // of the body is read and dropped, as node does for a body nobody reads, and the next
      // request follows it. Left unread, it would stop node reading the socket at all: the
      // next request unanswered, a client that gave up held until idle_timeout.
      if (!req.complete) {
        req.unpipe(out);
        req.resume();
      }
      resolve();
    });
  });
}

/** An origin silent for idle_timeout: 504, as a connect that timed out. */
export const ORIGIN_IDLE = new OriginIdleError();
/** A response its client took nothing of for idle_timeout: the client is cut. */
const CLIENT_STALLED = new ClientStalledError();
/** An origin that closed before the end of its response: 502 while none of its body went out. */
export const ORIGIN_CUT = new OriginCutError();
