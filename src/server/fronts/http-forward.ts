// Absolute-form requests (RFC 9112 §3.2.2): each one routed on its own through the pipeline's
// route and outbound, forwarded to the origin over the outbound's socket with hop-by-hop
// headers removed (RFC 9110 §7.6.1), bodies streamed both ways with backpressure (pipe).
// The client connection stays alive for the next request; the origin connection does not.

import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { finished } from 'node:stream';
import { ProtocolError, Rep, toRep } from '../../errors.js';
import type { Connection } from '../../outbound/types.js';
import { limitReader } from '../bandwidth.js';
import type { ClientConnection } from '../client.js';
import { formatAddress } from '../context.js';
import { admit, openConnect, refuse } from '../pipeline.js';
import type { Front } from '../request.js';
import { answer, authenticate, reasonOf, statusOf } from './http-answer.js';
import { requestContext } from './context.js';

/** Hop-by-hop fields never forwarded; Transfer-Encoding is redone by node on each side. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const EMPTY = Buffer.alloc(0);

export async function forward(conn: ClientConnection, req: IncomingMessage, res: ServerResponse): Promise<void> {
  conn.handshakeDone();
  const started = performance.now();
  const record = conn.newRecord('http');
  record.cmd = 'connect';
  const front: Front = {
    granted: () => {},
    refused(err) {
      record.status = statusOf(err);
      answer(res, record.status, reasonOf(err));
      return toRep(err);
    },
    remainder: () => EMPTY,
  };
  let ctx = requestContext(conn, front, { protocol: 'http', command: 'connect', dest: { host: '', port: 0 } });
  let url: URL;
  let origin: Connection;
  try {
    url = absoluteUrl(req.url ?? '');
    const dest = { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) };
    record.dest = formatAddress(dest);
    const checked = authenticate(conn.snapshot, req.headers['proxy-authorization'], conn.source.host, conn);
    const who = checked instanceof Promise ? await checked : checked;
    if (who.user !== undefined) record.user = who.user;
    ctx = requestContext(conn, front, { protocol: 'http', command: 'connect', dest, ...who });
    admit(ctx);
    origin = await openConnect(ctx);
  } catch (err) {
    req.resume(); // a body nobody forwards is read and dropped, so the next request can follow
    refuse(ctx, err);
    await done(res);
    conn.logRequest(record, started);
    return;
  }
  record.rep = Rep.SUCCEEDED;
  if (res.destroyed || conn.socket.destroyed) {
    // The client left while the origin was being dialed: nobody reads the answer.
    origin.socket.destroy();
    origin.release?.();
    record.error ??= 'client closed the connection';
  } else {
    await relayMessage(conn, req, res, url, origin, record);
  }
  conn.logRequest(record, started);
}

/** Resolves once the response is complete or cut off (at once when it already is). */
function done(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => finished(res, () => resolve()));
}

/** One request to the origin and its response back; resolves when the client's response is done. */
function relayMessage(
  conn: ClientConnection,
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  origin: Connection,
  record: ClientConnection['record'],
): Promise<void> {
  const socket = origin.socket;
  if (origin.head?.length && !socket.readableEnded) socket.unshift(origin.head);
  socket.setTimeout(conn.snapshot.config.limits.idle_timeout, () => socket.destroy(new Error('idle')));
  const headers = endToEnd(req.rawHeaders);
  if (!headers.some(([k]) => k.toLowerCase() === 'host')) headers.push(['Host', url.host]);
  const out = httpRequest({
    method: req.method,
    path: `${url.pathname}${url.search}`,
    headers: headers.flat(),
    createConnection: () => socket,
    setHost: false,
  });
  // An upstream's stream comes paused (it keeps the bytes that came with its reply), and
  // node's client only listens for 'data': it would never see the response.
  out.once('socket', (s) => s.resume());
  // Per-user bandwidth, as the relay applies it: bodies both ways charge the user's bucket.
  const throttle = conn.limits.throttle;
  return new Promise((resolve) => {
    out.on('response', (ores: IncomingMessage) => {
      record.status = ores.statusCode ?? 502;
      res.writeHead(record.status, ores.statusMessage, endToEnd(ores.rawHeaders).flat());
      ores.pipe(res);
      if (throttle) limitReader(ores, res, throttle);
      ores.on('error', () => res.destroy());
    });
    out.on('error', (err: Error) => {
      record.error ??= err.message;
      if (res.headersSent) res.destroy();
      else {
        record.status = statusOf(err);
        answer(res, record.status, reasonOf(err));
      }
    });
    req.pipe(out);
    if (throttle) limitReader(req, out, throttle);
    void done(res).then(() => {
      record.up = socket.bytesWritten;
      record.down = socket.bytesRead + (origin.head?.length ?? 0);
      socket.destroy();
      origin.release?.();
      resolve();
    });
  });
}

/** `http://host[:port]/path`; anything else is not a proxy request (RFC 9112 §3.2.2). */
function absoluteUrl(target: string): URL {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) throw new ProtocolError('origin-form request: a proxy needs an absolute URL');
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new ProtocolError('malformed URL');
  }
  if (url.protocol !== 'http:') throw new ProtocolError(`${url.protocol}// is not forwarded: use CONNECT`);
  return url;
}

/** Raw header pairs minus hop-by-hop ones and those the Connection field names (RFC 9110 §7.6.1). */
function endToEnd(raw: readonly string[]): Array<[string, string]> {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
  }
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !named.has(name)) out.push([raw[i]!, raw[i + 1]!]);
  }
  return out;
}
