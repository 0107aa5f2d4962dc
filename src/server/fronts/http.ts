// The HTTP proxy front (RFC 9110 §9.3.6, RFC 9112): glue around node's own HTTP parser, never
// parsing a byte itself. A CONNECT whose head is whole in the first read is read by that parser
// alone (http-first-connect.ts); otherwise the accepted socket, with the bytes the sniffer read
// put back, is handed to an http.Server. CONNECT becomes a tunnel through the pipeline's one
// relay, and absolute-form requests are forwarded one by one (http-forward.ts).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProtocolError, Rep } from '../../errors.js';
import type { Address } from '../../protocol/types.js';
import type { ClientConnection } from '../client.js';
import { closeClient, closed } from '../close.js';
import { formatAddress, type AccessRecord, type Snapshot } from '../context.js';
import { refuse, serve } from '../pipeline.js';
import type { ChunkReader } from '../reader.js';
import { clipForLog } from '../log-clip.js';
import type { Front } from '../request.js';
import { answer, authenticate, noteRefusedLogin, rawResponse, refuseRaw, type HttpIdentity } from './http-answer.js';
import { checkVersion } from './http-admission.js';
import { passDrainToResponse } from './http-drain.js';
import { bodyDidNotParse, forward } from './http-forward.js';
import { isHttp10 } from './http-message.js';
import { connectInFirstRead, type HeadLimits } from './http-first-connect.js';
import { headWithoutUpgrade } from './http-upgrade.js';
import { isWebSocketHandshake, webSocket } from './http-websocket.js';
import { requestContext } from './context.js';
import { EMPTY } from '../../protocol/constants.js';

/** Request heads beyond these are refused (431/400) before anything is routed. */
const MAX_HEADER_BYTES = 16 * 1024;
const MAX_HEADERS = 100;
/**
 * Requests one connection may have pipelined behind the one being served. They are served
 * one at a time, in order (each is routed, dialed and logged on its own), so a client that
 * pipelines a thousand requests in one write cannot open a thousand origin connections.
 * Past this many waiting, those waiting are still answered, the last with "Connection:
 * close", and nothing after them is served: the client retries the rest on a new connection
 * (RFC 9112 §9.3.2) and gets somewhere each time, where a close with no answer at all would
 * have it send the same flood again.
 */
const MAX_PIPELINED = 16;
/** The server's limits, for a head parsed without it. */
const HEAD_LIMITS: HeadLimits = { maxHeaderSize: MAX_HEADER_BYTES, maxHeadersCount: MAX_HEADERS + 1 };
/** A first request head still incomplete at handshake_timeout (RFC 9110 §15.5.9). */
const HEAD_TIMEOUT = { status: 408, bytes: rawResponse(408, 'request head timeout') };
/** Encoded once: a tunnel's reply is always these bytes. */
const ESTABLISHED = Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n', 'latin1');
const DONE = Promise.resolve();
function drop(): void {}

export class HttpFront {
  readonly #server: Server;
  readonly #clients = new WeakMap<Socket, ClientConnection>();
  /** Requests of each client still running: the client is done once they have logged. */
  readonly #inFlight = new WeakMap<ClientConnection, Set<Promise<void>>>();
  /** Each client's request queue (see RequestQueue). */
  readonly #queues = new WeakMap<ClientConnection, RequestQueue>();
  /** Clients whose head did not parse: node's parser stays failed and reports every later read again. */
  readonly #unparsable = new WeakSet<Socket>();
  /** Each client's latest absolute-form request: while incomplete, node's parser is in its body. */
  readonly #latest = new WeakMap<Socket, IncomingMessage>();
  /** Responses being served now (forward runs): drain() marks those whose head is still to go. */
  readonly #serving = new Set<ServerResponse>();
  /** Set by drain(): every answer from then on is its connection's last. */
  #draining = false;
  /** The 'data' listeners node's server put on each client socket: what feeds its parser. */
  readonly #parsers = new WeakMap<Socket, Array<(...args: unknown[]) => void>>();

  constructor() {
    // requireHostHeader off: node would answer an HTTP/1.1 request without Host itself (an empty
    // 400, never logged); forward() refuses it with its reason and an access-log line instead.
    this.#server = createServer({ maxHeaderSize: HEAD_LIMITS.maxHeaderSize, requestTimeout: 0, connectionsCheckingInterval: 250, requireHostHeader: false });
    // node keeps the first maxHeadersCount fields and drops the rest silently: one more than
    // allowed is kept, so a head with too many is seen, and refused (431), not cut short.
    this.#server.maxHeadersCount = HEAD_LIMITS.maxHeadersCount;
    // A client's FIN ends its requests (node's default, and Squid's half_closed_clients off):
    // a crawler that gives up closes, and the origin connection goes at once, not at
    // idle_timeout. A client that half-closes after its request (`nc -N`) gets no answer.
    this.#server.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onConnect(req, socket as Socket, head));
    this.#server.on('request', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    // Expect: 100-continue: the client is told to send its body once the request is routed
    // and dialed (forward), not before: a refused one is answered without the upload.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    // Any other expectation: node would answer 417 itself, unlogged; forward() answers it, in
    // turn, with its access-log line.
    this.#server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.#onRequest(req, res));
    // An offer to switch protocols: a WebSocket handshake is tunnelled on its 101
    // (http-websocket.ts), any other parsed again as a plain request (http-upgrade.ts).
    this.#server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#onUpgrade(req, socket as Socket, head));
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => this.#onClientError(err, socket as Socket));
    // node starts checking headersTimeout when a server listens; this one never does (the
    // gateway's listener accepts), so it is told it is listening. close() stops the checks.
    this.#server.emit('listening');
  }

  /**
   * Hands the client to node's parser, the sniffed bytes first; resolves when it is closed. Not
   * async: a tunnel's own promise is handed over as it is, with no promise of this function's
   * waiting on it for the tunnel's life.
   */
  run = (conn: ClientConnection, reader: ChunkReader, first: Buffer): Promise<void> => {
    // The usual opening, a CONNECT whole in the first read, needs no server (http-first-connect.ts);
    // one with too many fields goes to the server, which refuses it.
    const opening = connectInFirstRead(conn.socket, first, HEAD_LIMITS);
    if (opening && !tooManyFields(opening.req)) {
      reader.detach();
      return tunnel(conn, opening.req, opening.rest);
    }
    return this.#serveParsed(conn, reader, first);
  };

  async #serveParsed(conn: ClientConnection, reader: ChunkReader, first: Buffer): Promise<void> {
    const { limits } = conn.snapshot.config;
    // Server-wide, read at check time: the latest config applies.
    this.#server.headersTimeout = limits.handshake_timeout;
    this.#server.keepAliveTimeout = limits.idle_timeout;
    this.#clients.set(conn.socket, conn);
    conn.deadlineAnswer = HEAD_TIMEOUT;
    conn.holdDeadline(); // node's parser reads from here on: the deadline still runs from accept
    reader.detach();
    this.#parse(conn.socket, first);
    await closed(conn.socket);
    for (let running = this.#inFlight.get(conn); running?.size; ) await Promise.all(running);
    logUnserved(conn, this.#queues.get(conn));
    // Gone before a first head was whole: a FIN gets its 400, but a reset reaches clientError
    // with nothing to answer, and the line would read as a connection that ended well.
    if (conn.logged === 0) conn.record.error ??= 'closed during handshake';
  }

  #track(conn: ClientConnection, work: Promise<void>): void {
    let running = this.#inFlight.get(conn);
    if (!running) this.#inFlight.set(conn, (running = new Set()));
    const set = running;
    const done = work.finally(() => set.delete(done));
    set.add(done);
  }

  /**
   * Runs `serve` once the client's earlier requests are done (a CONNECT pipelined behind a
   * GET too: its tunnel must not start inside the GET's response). `res`: the response of an
   * absolute-form request, which the close is put on when the queue overflows behind it.
   * False when too many already wait: the request is not served, nor answered, only counted
   * for the connection's last access-log line (logUnserved). `request` false: the work is no
   * request of its own (the 400 for a body that did not parse), not counted when skipped.
   */
  #inTurn(conn: ClientConnection, serve: () => Promise<void>, failed: (err: unknown) => void, res?: ServerResponse, request = true): boolean {
    let queue = this.#queues.get(conn);
    if (!queue) this.#queues.set(conn, (queue = { tail: Promise.resolve(), waiting: 0, last: undefined, full: false, unserved: 0, why: undefined, since: 0 }));
    if (queue.full) {
      if (request) notServed(queue, OVERFLOWED);
      return false;
    }
    if (queue.waiting >= MAX_PIPELINED) {
      queue.full = true;
      if (request) notServed(queue, OVERFLOWED);
      conn.log.warn({ client: conn.record.client, waiting: queue.waiting }, 'too many pipelined requests; the connection closes after those waiting');
      // No more is read (every request waiting is whole: the parser reached this one past their
      // bodies); node's parser goes on with the chunk it holds, whose requests are dropped.
      this.#stopParsing(conn.socket);
      // The last one waiting says so; one that is a refusal, or a tunnel, ends the connection itself.
      if (queue.last) queue.last.shouldKeepAlive = false;
      return false;
    }
    const q = queue;
    q.waiting++;
    q.last = res;
    const work = q.tail.then(() => {
      q.waiting--;
      // An answer ahead of this request closed the connection (a 400, a 431, a response the
      // origin sent bytes after): what was pipelined behind it is not served; the client
      // retries it (RFC 9112 §9.3.2).
      if (!conn.closing) return serve();
      if (request) notServed(q, CLOSED_AHEAD);
      return undefined;
    });
    q.tail = work.catch(failed);
    this.#track(conn, q.tail);
    return true;
  }

  /**
   * Shutdown: no client is kept alive for a next request, which would hold the drain and be
   * cut at its end (RFC 9112 §9.6). Clients waiting for one are closed now; an answer whose
   * head is still to go says "Connection: close" and ends its connection; one already sent
   * keep-alive is followed by the close once it is whole (#served).
   */
  drain(): void {
    this.#draining = true;
    for (const res of this.#serving) if (!res.headersSent) res.shouldKeepAlive = false;
    this.#server.closeIdleConnections();
  }

  close(): void {
    this.#server.close();
  }

  #onConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.pause(); // node no longer reads for us: nothing may flow before the relay
    const conn = this.#clients.get(socket);
    if (!conn) return void socket.destroy();
    if (tooManyFields(req)) return this.#refuseHead(conn, TOO_MANY_FIELDS, socket);
    // Responses to requests pipelined ahead of this one are still to be written whole.
    const stopDraining = passDrainToResponse(socket);
    // Taken once the tunnel starts: the failure handler below shares this scope and is held
    // until the tunnel ends, and must not keep the message and the read behind `head` with it.
    let opening: { req: IncomingMessage; head: Buffer } | undefined = { req, head };
    this.#inTurn(
      conn,
      () => {
        stopDraining();
        const { req, head } = opening!;
        opening = undefined;
        return tunnel(conn, req, head);
      },
      (err) => {
        conn.log.error({ err }, 'CONNECT failed');
        socket.destroy();
      },
    );
  }

  #onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.pause(); // node no longer reads for us, as after a CONNECT head
    const conn = this.#clients.get(socket);
    if (!conn) return void socket.destroy();
    if (tooManyFields(req)) return this.#refuseHead(conn, TOO_MANY_FIELDS, socket);
    // A new parser takes the socket once the responses ahead are written whole (node queues the next on the last).
    const stopDraining = passDrainToResponse(socket);
    const again = async (): Promise<void> => {
      stopDraining();
      // Gone, or its FIN in, while those were answered: its requests end with it.
      if (socket.destroyed || socket.readableEnded) return void socket.destroy();
      if (isWebSocketHandshake(req)) return webSocket(conn, req, head);
      this.#parse(socket, Buffer.concat([headWithoutUpgrade(req), head]));
    };
    this.#inTurn(conn, again, () => socket.destroy());
  }

  /** Hands `socket` to node's parser, `bytes` first. */
  #parse(socket: Socket, bytes: Buffer): void {
    socket.unshift(bytes);
    const before = new Set(socket.listeners('data'));
    this.#server.emit('connection', socket);
    this.#parsers.set(socket, socket.listeners('data').filter((l) => !before.has(l)) as Array<(...args: unknown[]) => void>);
    socket.resume();
    // node's server reads the socket's handle itself, and stops it on the socket's 'pause', starts
    // it on 'resume'. 'resume' comes a tick after resume(), and `bytes` are parsed before it: a
    // request body among them that fills the request's buffer pauses the socket first, and the
    // late 'resume' then started the handle for good, under a paused stream that node never
    // pauses again. A body the gateway was not yet forwarding (its route, its dial) was read
    // whole into memory, GBs of it. Told 'pause' again, node stops the handle as it should.
    socket.once('resume', () => {
      if (socket.readableFlowing === false) socket.emit('pause');
    });
  }

  /**
   * Takes node's parser off `socket`, and stops reading it. pause() alone does not hold: node
   * resumes the socket after each request it parses whole (readStart), its parser reads the
   * socket's handle itself, and it keeps every request it parses, with its response, until
   * the connection ends: a client that went on pipelining had all it sent parsed and held
   * (hundreds of MB for tens sent). A 'data' listener of ours is how node's server is told
   * to hand the socket back (it unconsumes on one); what comes to it is dropped.
   */
  #stopParsing(socket: Socket): void {
    for (const l of this.#parsers.get(socket) ?? []) socket.off('data', l);
    this.#parsers.delete(socket);
    socket.on('data', drop);
    socket.pause();
    // node resumes the socket for each request still in the read being parsed: paused again after it.
    process.nextTick(() => socket.pause());
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.#clients.get(req.socket as Socket);
    if (!conn) return void res.destroy();
    this.#latest.set(req.socket as Socket, req);
    // RFC 9112 §9.3 and C.2.2: a proxy keeps no persistent connection with an HTTP/1.0 client,
    // whatever its Keep-Alive says (node's server, an origin, would keep it).
    if (isHttp10(req)) res.shouldKeepAlive = false;
    // node parsed this head whole and goes on with what follows it: the 431 goes out through
    // its response, in turn, and closes the connection, so nothing behind it is served.
    if (tooManyFields(req)) return this.#refuseHead(conn, TOO_MANY_FIELDS, req.socket as Socket, res);
    // Past the queue's bound it is left unanswered: the connection ends after those waiting.
    this.#inTurn(
      conn,
      () => this.#served(res, forward(conn, req, res)),
      (err) => {
        conn.log.error({ err }, 'HTTP request failed');
        res.destroy();
      },
      res,
    );
  }

  /** Tracks `res` while `serving` runs; during a drain, its connection is closed once it is answered. */
  async #served(res: ServerResponse, serving: Promise<void>): Promise<void> {
    if (this.#draining) res.shouldKeepAlive = false;
    this.#serving.add(res);
    try {
      await serving;
    } finally {
      this.#serving.delete(res);
      // Its head went out keep-alive before the drain began: now whole, its connection is idle.
      // (Only those: the others close their connection themselves, and each call looks at all.)
      if (this.#draining && res.shouldKeepAlive) this.#server.closeIdleConnections();
    }
  }

  #onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    // Only the first report is answered: a 400 queued for each would reach MAX_PIPELINED and
    // cut the client off, with a response still owed to it. The rest is read and dropped, as
    // closeClient does, not left unread: a close with unread bytes is a reset, which can
    // erase what the client has yet to read (RFC 9112 §9.6).
    if (this.#unparsable.has(socket)) return;
    this.#unparsable.add(socket);
    // Bytes after a request that asked to close (or an HTTP/1.0 one without keep-alive): the
    // connection ends after that request's answer, and what follows is not processed (RFC 9112
    // §9.6). Nothing is answered, so nothing is logged with a status the client never got.
    if (err.code === 'HPE_CLOSED_CONNECTION') return;
    if (err.code === 'ECONNRESET' || !socket.writable) return void socket.destroy();
    const req = this.#latest.get(socket);
    // The client closed in the middle of a request body (an upload it gave up): it left, and
    // its FIN ends its requests, as between them. That request's line says the client closed
    // (its relay ends with the socket); nothing is answered, and the rest of its body is no
    // request of its own to be refused and logged as a 400.
    if (err.code === 'HPE_INVALID_EOF_STATE' && req !== undefined && !req.complete) return void socket.destroy();
    // In the body of a request (a bad chunk size): that request gets the 400, in its turn.
    const inBody = req !== undefined && !req.complete;
    if (inBody) bodyDidNotParse(req, err.code ?? err.message);
    this.#refuseHead(this.#clients.get(socket), err, socket, undefined, !inBody);
  }

  /**
   * Malformed heads (400), oversize ones (431), heads that never end (408): answered, then
   * closed, once the requests before them are answered (a bad one pipelined behind a good
   * one must not cost the good one its response); nothing pipelined behind is served.
   * `res` is node's response to the refused request, when node parsed it whole. `request`
   * false: the error is in the body of a request already queued, no request of its own.
   */
  #refuseHead(conn: ClientConnection | undefined, err: NodeJS.ErrnoException, socket: Socket, res?: ServerResponse, request = true): void {
    const reply = (): void => {
      // An answer ahead of this one closes the connection already (the request whose body
      // this error cut short got the 400): nothing more is said or logged.
      if (conn?.closing) return;
      const status = err.code === 'HPE_HEADER_OVERFLOW' || err === TOO_MANY_FIELDS ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const line = status === 431 ? 'request header too large' : status === 408 ? 'request head timeout' : 'bad request';
      if (conn) {
        conn.closing = true;
        // A request on a connection that already logged some gets its own line.
        const record = conn.logged > 0 ? conn.newRecord('http') : conn.record;
        // A head cut off by the handshake deadline ends in a parse error: the deadline is the cause.
        record.status ??= status;
        // The SOCKS-style code beside the status, as every other refusal has: the request failed.
        record.rep ??= Rep.GENERAL_FAILURE;
        record.error ??= status === 408 ? 'handshake timeout' : `bad request (${err.code ?? err.message})`;
        if (conn.logged > 0) conn.logRequest(record, performance.now());
      }
      if (!socket.writable) return void socket.destroy();
      if (res) {
        // node writes it as the answer to its request, with Connection: close, and ends the socket after it.
        res.shouldKeepAlive = false;
        return answer(res, status, line);
      }
      closeClient(socket, rawResponse(status, line));
    };
    if (!conn) return reply();
    this.#inTurn(
      conn,
      async () => reply(),
      () => socket.destroy(),
      undefined,
      request,
    );
  }
}

/** One client's requests in turn. */
interface RequestQueue {
  /** The end of the last one queued: the next starts after it. */
  tail: Promise<void>;
  /** How many wait behind the one served. */
  waiting: number;
  /** The response of the last one queued, when it is an absolute-form request. */
  last: ServerResponse | undefined;
  /** Overflowed: nothing more is queued, and the connection ends after those waiting. */
  full: boolean;
  /** Requests parsed but never served nor answered, why the first of them was not, and when. */
  unserved: number;
  why: string | undefined;
  since: number;
}

const OVERFLOWED = `more than ${MAX_PIPELINED} were waiting; the connection closed after answering those`;
const CLOSED_AHEAD = 'an answer ahead closed the connection';

function notServed(queue: RequestQueue, why: string): void {
  if (queue.unserved++ === 0) {
    queue.why = why;
    queue.since = performance.now();
  }
}

/**
 * One access-log line for the requests a connection's client pipelined that got no answer:
 * however many there were, so one write cannot make a line each; after the answered ones'.
 * No status and no reply code, as nothing was sent for them; the client retries them on a
 * new connection (RFC 9112 §9.3.2), and the reason says why they were dropped.
 */
function logUnserved(conn: ClientConnection, queue: RequestQueue | undefined): void {
  if (!queue?.unserved) return;
  // The first request's line is the connection's own, written at its end once nothing else
  // is (a 400 or 431 refusing it): written here first, or this line would take its place.
  if (conn.logged === 0) conn.logRequest(conn.record, conn.started);
  const record = conn.newRecord('http');
  const n = queue.unserved;
  record.error = `${n} pipelined request${n === 1 ? '' : 's'} not served: ${queue.why}`;
  conn.logRequest(record, queue.since);
}

/** A head with more fields than MAX_HEADERS (node kept one more than allowed, so it shows). */
function tooManyFields(req: IncomingMessage): boolean {
  return req.rawHeaders.length > 2 * MAX_HEADERS;
}

const TOO_MANY_FIELDS: NodeJS.ErrnoException = Object.assign(new Error('too many header fields'), { code: 'HPE_HEADER_OVERFLOW' });

/** CONNECT host:port: "200 Connection established", then raw bytes both ways (RFC 9110 §9.3.6). */
function tunnel(conn: ClientConnection, req: IncomingMessage, head: Buffer): Promise<void> {
  conn.handshakeDone();
  const started = performance.now();
  const client = conn.socket;
  const record = conn.newRecord('http');
  record.cmd = 'connect';
  let early: Buffer = head;
  const front: Front = {
    granted() {
      record.status = 200;
      client.write(ESTABLISHED);
    },
    refused: (err) => refuseRaw(client, record, err),
    remainder() {
      const r = early;
      early = EMPTY; // shared: this scope lives as long as the tunnel, and a fresh Buffer would with it
      return r;
    },
  };
  // One reaction on the pipeline's promise while the tunnel runs: waiting for the client's close
  // and the access-log line are chained only once it has ended (memory per idle tunnel).
  return open(conn, req, front, record).then(() => logOnClose(conn, record, started));
}

async function logOnClose(conn: ClientConnection, record: AccessRecord, started: number): Promise<void> {
  await closed(conn.socket);
  conn.logRequest(record, started);
}

/**
 * Checks, routes and serves the CONNECT, or refuses it; resolves once the relay has ended. Never
 * rejects. Not async: without a login to wait for, the pipeline's own promise is returned, and
 * nothing of this function (no frame, no promise of its own) stays for the life of the tunnel.
 */
function open(conn: ClientConnection, req: IncomingMessage, front: Front, record: AccessRecord): Promise<void> {
  let dest: Address;
  let snapshot: Snapshot;
  let checked: HttpIdentity | Promise<HttpIdentity>;
  try {
    checkVersion(req);
    dest = authority(req.url ?? '');
    record.dest = clipForLog(formatAddress(dest));
    // Each request on a kept-alive connection is checked and routed on the config live now:
    // a reload that revokes a password or blocks a destination reaches it.
    snapshot = conn.current();
    checked = authenticate(snapshot, req.headers['proxy-authorization'], conn.source.host, conn);
  } catch (err) {
    return refused(conn, front, record, err);
  }
  if (!(checked instanceof Promise)) return served(conn, front, record, dest, checked, snapshot);
  return checked.then(
    (who) => served(conn, front, record, dest, who, snapshot),
    (err: unknown) => refused(conn, front, record, err),
  );
}

/** The pipeline's promise for a CONNECT checked and let in (serve never rejects). */
function served(conn: ClientConnection, front: Front, record: AccessRecord, dest: Address, who: HttpIdentity, snapshot: Snapshot): Promise<void> {
  try {
    if (who.user !== undefined) record.user = who.user;
    return serve(requestContext(conn, front, record, { protocol: 'http', command: 'connect', dest, ...who }, snapshot));
  } catch (err) {
    return refused(conn, front, record, err);
  }
}

function refused(conn: ClientConnection, front: Front, record: AccessRecord, err: unknown): Promise<void> {
  noteRefusedLogin(record, err);
  const ctx = requestContext(conn, front, record, { protocol: 'http', command: 'connect', dest: { host: '', port: 0 } });
  refuse(ctx, err);
  return DONE;
}

/** `host:port` or `[v6]:port`, as CONNECT's authority-form has it (RFC 9112 §3.2.3). */
export function authority(target: string): Address {
  // RFC 9112 §3.2.3 has no userinfo here; what a client put there is a password, not to be
  // repeated in the answer or the access log (as for an absolute-form target).
  if (target.includes('@')) throw new ProtocolError('userinfo in the CONNECT target');
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]/@\s]+)):(\d{1,5})$/.exec(target);
  const port = m ? Number(m[3]) : 0;
  if (!m || port < 1 || port > 65535) throw new ProtocolError(`CONNECT target "${target.slice(0, 100)}" is not host:port`);
  return { host: (m[1] ?? m[2])!, port };
}
