// Small pieces of the admin listener's HTTP handling: JSON answers, bounded JSON bodies,
// the bearer-token check and the Host check.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isIP } from 'node:net';

/** Bodies the API accepts are a few fields: anything larger is refused unread. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A failure with the HTTP status it is answered with. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.status = status;
    this.headers = headers;
  }
}

/**
 * Ends the connection after this answer when the request's body has not been read (a 401
 * or 413 answered first): node would otherwise read and discard the rest of it, however
 * long the client keeps sending. Call before the head is written. A request without a body
 * is not complete yet when its handler runs, but there is nothing left to read: its
 * connection stays open for the next request (a probe's, a scrape's, the page's).
 */
export function closeIfUnread(res: ServerResponse): void {
  if (!res.req.complete && hasBody(res.req)) res.shouldKeepAlive = false;
}

/** RFC 9112 §6.3: a request has a body only when it says so, in Transfer-Encoding or Content-Length. */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) !== 0;
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  closeIfUnread(res);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

/** The request's JSON body, or undefined when it has none. */
export async function readJson(req: IncomingMessage): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) throw new HttpError(415, 'the body must be application/json');
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'the body is not valid JSON');
  }
}

const digest = (bytes: Buffer): Buffer => createHash('sha256').update(bytes).digest();

/**
 * True when `header` is `Bearer TOKEN` with the configured token, which may hold spaces and
 * any UTF-8 (node reads header bytes as latin1: they are compared as the bytes sent). Both
 * sides are hashed first, so the comparison takes the same time whatever the length or the
 * first mismatch. Whitespace around the configured token (the newline a secret mounted from
 * a file brings along) is left out: no header can carry it (RFC 9110 §5.5).
 */
export function bearerMatches(header: string | undefined, token: string): boolean {
  const m = /^Bearer +/i.exec(header ?? '');
  // Trailing spaces cut by hand: a pattern for "the rest but its trailing spaces" backtracks
  // over every run of spaces inside, so one 16 KiB header held the event loop for 0.2 s.
  const given = digest(Buffer.from(m ? withoutTrailingSpaces(header!.slice(m[0].length)) : '', 'latin1'));
  return timingSafeEqual(given, digest(Buffer.from(token.trim(), 'utf8'))) && m !== null;
}

function withoutTrailingSpaces(text: string): string {
  let end = text.length;
  while (end > 0 && text.charCodeAt(end - 1) === 0x20) end--;
  return text.slice(0, end);
}

/**
 * True when a request to a loopback listener names a host it can mean: an IP literal or
 * localhost. DNS rebinding makes a web page's own name resolve to 127.0.0.1, and the
 * browser then lets the page read the listener as its own origin; such a request names
 * the page's host. (No Host at all is HTTP/1.0: node refuses HTTP/1.1 without one.)
 */
export function loopbackHostAllowed(host: string | undefined): boolean {
  if (host === undefined) return true;
  // RFC 9110 §7.2: uri-host [":" port], an IPv6 literal in brackets.
  const m = /^(?:\[([^\]]*)\]|([^:]*))(?::\d*)?$/.exec(host);
  if (!m) return false;
  if (m[1] !== undefined) return isIP(m[1]) === 6;
  const name = m[2]!.toLowerCase().replace(/\.$/, '');
  // RFC 6761 §6.3: localhost and its subdomains are loopback, browsers never ask DNS for them.
  return isIP(name) === 4 || name === 'localhost' || name.endsWith('.localhost');
}
