// A WebSocket handshake in absolute-form (RFC 6455 §4.1 through a proxy, as `ws` with
// http-proxy-agent sends it): routed as any request, sent to the origin with its Upgrade, and
// on the origin's HTTP/1.x 101 the connection becomes a tunnel through the pipeline's one relay, as
// gost and Clash do. Any other answer is passed on and ends the connection: what the client
// sent behind its handshake was meant for the new protocol.

import { request as httpRequest, STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { Rep, toRep } from '../../errors.js';
import type { Connection } from '../../outbound/types.js';
import type { ClientConnection } from '../client.js';
import { closeClient, closed } from '../close.js';
import type { AccessRecord, CommandContext } from '../context.js';
import { admit, openConnect, refuse } from '../pipeline.js';
import { consumed, relay, resetSocket, writeAhead } from '../relay.js';
import type { Front } from '../request.js';
import { admitRequest, refusalContext } from './http-admission.js';
import { noteRefusedLogin, originReasonOf, rawResponse, refuseRaw, statusOf } from './http-answer.js';
import { MAX_RESPONSE_HEAD, ORIGIN_CUT, ORIGIN_IDLE } from './http-forward.js';
import { endToEnd, headText, otherVersion, reasonPhrase, responseFields, unusableResponse, type AbsoluteTarget } from './http-message.js';
import { giveUp } from '../../outbound/give-up.js';
import { IdleHold, limitReader } from '../bandwidth.js';
import { EMPTY } from '../../protocol/constants.js';


/** A WebSocket opening handshake: a GET asking for `websocket`, with no body (RFC 6455 §4.1). */
export function isWebSocketHandshake(req: IncomingMessage): boolean {
  return (
    req.method === 'GET' &&
    /^\s*websocket\s*$/i.test(req.headers.upgrade ?? '') &&
    req.headers['content-length'] === undefined &&
    req.headers['transfer-encoding'] === undefined
  );
}

/** Serves one handshake, and the tunnel after it; resolves once the client is closed and the request logged. */
export async function webSocket(conn: ClientConnection, req: IncomingMessage, head: Buffer): Promise<void> {
  // The connection is the tunnel's now, or ends with the answer: nothing behind it is parsed.
  conn.closing = true;
  const started = performance.now();
  const client = conn.socket;
  const record = conn.newRecord('http');
  record.cmd = 'connect';
  const front: Front = { granted: () => {}, refused: (err) => refuseRaw(client, record, err), remainder: () => EMPTY };
  let ctx = refusalContext(conn, front, record);
  try {
    let target: AbsoluteTarget;
    ({ ctx, target } = await admitRequest(conn, req, front, record));
    const admitting = admit(ctx);
    if (admitting) await admitting;
    const origin = await openConnect(ctx);
    record.rep = Rep.SUCCEEDED;
    await switchProtocols(ctx, req, head, target, origin);
  } catch (err) {
    noteRefusedLogin(record, err);
    refuse(ctx, err);
  }
  await closed(client);
  conn.logRequest(record, started);
}

/** The handshake to the origin and its answer back; on a 101, the relay both ways. */
function switchProtocols(ctx: CommandContext, req: IncomingMessage, head: Buffer, target: AbsoluteTarget, origin: Connection): Promise<void> {
  const { client, record } = ctx;
  const socket = origin.socket;
  if (origin.head?.length && !socket.readableEnded) socket.unshift(origin.head);
  // Counted as a forwarded request is: what crossed to and from the origin, no upstream handshake.
  const upFrom = socket.bytesWritten;
  const downFrom = consumed(socket);
  const count = (): void => {
    record.up = socket.bytesWritten - upFrom;
    record.down = consumed(socket) - downFrom;
  };
  const idleTimeout = ctx.snapshot.config.limits.idle_timeout;
  socket.setTimeout(idleTimeout, () => socket.destroy(ORIGIN_IDLE));
  // Upgrade and the Connection token naming it go on: they are the request (RFC 9110 §7.8).
  const fields = endToEnd(req.rawHeaders).filter(([k]) => k.toLowerCase() !== 'host');
  fields.unshift(['Host', target.authority]);
  fields.push(['Connection', 'Upgrade'], ['Upgrade', req.headers.upgrade ?? 'websocket']);
  let out: ClientRequest;
  try {
    out = httpRequest({ method: 'GET', path: target.path, headers: fields.flat(), createConnection: () => socket, setHost: false, maxHeaderSize: MAX_RESPONSE_HEAD });
  } catch (err) {
    // Nothing node's server let through should be refused by its client; if it is, 502.
    record.error ??= err instanceof Error ? err.message : String(err);
    giveUp(origin);
    record.status = 502;
    record.rep = Rep.GENERAL_FAILURE;
    closeClient(client, rawResponse(502, 'bad gateway: the request could not be forwarded'));
    return Promise.resolve();
  }
  // An upstream's stream comes paused (http-forward.ts).
  out.once('socket', (s: Socket) => s.resume());
  // Every field of the answer is read, as for a forwarded request (http-forward.ts).
  out.maxHeadersCount = 0;
  // The client leaving while the origin has not answered: the origin goes too. After an answer
  // passed on whole (our end flushed), the client's close is the one that answer asked for.
  const leave = (): void => {
    if (!client.writableFinished) record.error ??= 'client closed the connection';
    socket.destroy();
  };
  client.once('close', leave);
  const ahead = watchAhead(client, head);
  return new Promise((resolve) => {
    /** A response no client could read: the origin's connection goes, the client gets a 502 saying why, as a forwarded request does. */
    const badGateway = (why: string): void => {
      ahead();
      record.error ??= why;
      socket.destroy();
      record.status = 502;
      record.rep = Rep.GENERAL_FAILURE;
      closeClient(client, rawResponse(502, `bad gateway: ${why}`));
    };
    /** The origin switched: the connection is the relay's, which ends the handshake. */
    let switched = false;
    out.on('upgrade', (ores: IncomingMessage, tunnel: Socket, early: Buffer) => {
      // node's client hands a 101 over here, past the 'response' below: its version is checked
      // here (an HTTP/2.0 101 is no HTTP/1.1 switch, RFC 9112 §2.3).
      const unusable = otherVersion(ores);
      if (unusable !== undefined) {
        tunnel.destroy();
        return badGateway(unusable);
      }
      client.off('close', leave);
      const sentAhead = ahead();
      tunnel.setTimeout(0);
      switched = true;
      record.status = 101;
      client.write(responseHead(ores, [['Connection', 'Upgrade'], ['Upgrade', ores.headers.upgrade ?? 'websocket']]), 'latin1');
      if (early.length) writeAhead(client, early, ctx.limits.throttle);
      // What the client sent behind its handshake goes first, as after CONNECT.
      void relay(client, tunnel, { idleTimeout, early: sentAhead, throttle: ctx.limits.throttle }).then((result) => {
        count();
        if (result.reason !== 'closed') record.error ??= result.error?.message ?? result.reason;
        origin.release?.();
        resolve();
      });
    });
    /** A failure before any answer went out: the client gets its status (once answered, the answer's own path ends it). */
    const failed = (err: Error): void => {
      ahead();
      record.error ??= err.message;
      if (record.status !== undefined || client.destroyed) return;
      record.status = statusOf(err);
      record.rep = toRep(err);
      closeClient(client, rawResponse(record.status, originReasonOf(err)));
    };
    /** A response other than a 101 came: it answers the client itself (passOn), even after out's 'close'. */
    let responded = false;
    out.on('response', (ores: IncomingMessage) => {
      responded = true;
      ahead();
      // Checked as a forwarded request's response is: a status, version or coding no client could read.
      const unusable = unusableResponse(ores, 'GET');
      if (unusable !== undefined) return badGateway(unusable);
      // The user's bandwidth, as for a forwarded response: an origin that ignores the Upgrade
      // serves the resource itself, and a handshake must not fetch it past the limit. The
      // origin's idle timer is held off while the debt is waited out.
      const throttle = ctx.limits.throttle;
      if (throttle) limitReader(ores, client, throttle, new IdleHold(socket, idleTimeout));
      passOn(ores, client, record, failed);
    });
    out.on('error', failed);
    out.on('close', () => {
      if (switched) return; // the relay's now
      count();
      origin.release?.();
      // node's client may report the close before the response it read has ended (or failed).
      if (!responded && record.status === undefined) closeClient(client, rawResponse(502, 'bad gateway: origin closed without a response'));
      resolve();
    });
    out.end();
  });
}

/** The most a client may send ahead of the origin's answer and still be read (then it is paused, its close unseen). */
const MAX_AHEAD = 64 * 1024;

/**
 * Reads the client while the origin has not answered: a socket left paused reports neither
 * its FIN nor its reset, and the origin would be held for it until idle_timeout. A FIN ends
 * the handshake at once, unanswered, as it ends any request (Squid's half_closed_clients off).
 * Bytes sent meanwhile are for the new protocol: kept for the tunnel, after `head`, up to
 * MAX_AHEAD. The function returned ends the watch (the client paused again) and gives them
 * (the first call; later ones, nothing).
 */
function watchAhead(client: Socket, head: Buffer): () => Buffer {
  const held = [head];
  let bytes = head.length;
  let watching = true;
  const hold = (chunk: Buffer): void => {
    held.push(chunk);
    bytes += chunk.length;
    if (bytes >= MAX_AHEAD) client.pause();
  };
  const ended = (): void => void client.destroy();
  client.on('data', hold);
  client.once('end', ended);
  // The socket comes paused (http.ts), and a 'data' listener does not resume a paused stream:
  // unread, a byte ahead of the FIN hides it.
  if (bytes < MAX_AHEAD) client.resume();
  return () => {
    if (!watching) return EMPTY;
    watching = false;
    client.off('data', hold);
    client.off('end', ended);
    client.pause();
    const sent = held.length === 1 ? held[0]! : Buffer.concat(held);
    held.length = 0; // not kept for the life of the tunnel by the listeners that end the watch
    return sent;
  };
}

/**
 * An answer other than 101: passed on, its body decoded from its own framing and ended by the
 * close. Its head goes out with the first of its body, or its end: a body that fails before
 * any of it (does not parse, never comes) is `failed` with a 502 in its place, as a forwarded
 * request's is.
 */
function passOn(ores: IncomingMessage, client: Socket, record: AccessRecord, failed: (err: Error) => void): void {
  let started = false;
  /** Writes the head unless an answer went out in its place (the origin's failure, reported first). */
  const start = (): boolean => {
    if (started) return true;
    if (record.status !== undefined || client.destroyed) return false;
    started = true;
    record.status = ores.statusCode;
    client.write(responseHead(ores, [['Connection', 'close']]), 'latin1');
    return true;
  };
  ores.once('data', (first: Buffer) => {
    if (!start()) return void ores.destroy();
    client.write(first);
    ores.pipe(client, { end: false });
  });
  // closeClient's linger runs from its call: called once the body has left for the client.
  ores.on('end', () => {
    if (!start()) return;
    if (client.writableNeedDrain) client.once('drain', () => closeClient(client));
    else closeClient(client);
  });
  ores.on('error', () => {
    if (!started) return failed(ORIGIN_CUT);
    record.error ??= ORIGIN_CUT.message;
    // Cut short: only a reset can say so, a FIN would end a close-delimited body as if whole.
    resetSocket(client);
  });
}

/** The origin's status line and end-to-end fields, with `last` after them (no framing of its own: the body is decoded). */
function responseHead(ores: IncomingMessage, last: Array<[string, string]>): string {
  const status = ores.statusCode ?? 502;
  return headText(`HTTP/1.1 ${status} ${reasonPhrase(ores.statusMessage) ?? STATUS_CODES[status] ?? ''}`, [...responseFields(status, ores.rawHeaders), ...last]);
}
