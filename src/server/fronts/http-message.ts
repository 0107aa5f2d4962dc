// What an absolute-form request and its response are made of, as the forward passes them on:
// the request target (RFC 9112 §3.2.2), the end-to-end fields (hop-by-hop ones removed, RFC
// 9110 §7.6.1), the reason phrase, and the interim (1xx) responses an origin sends first.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProtocolError } from '../../errors.js';
import type { Address } from '../../protocol/types.js';
import { clipForLog } from '../log-clip.js';

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

/** An HTTP/1.0 client: it knows no 1xx and no expectations. */
export function isHttp10(req: IncomingMessage): boolean {
  return req.httpVersionMajor === 1 && req.httpVersionMinor === 0;
}

/** The origin's reason phrase when node's server can write it again (RFC 9112 §4), else its own. */
export function reasonPhrase(text: string | undefined): string | undefined {
  return text !== undefined && /^[\t\x20-\x7e\x80-\xff]*$/.test(text) ? text : undefined;
}

export interface AbsoluteTarget {
  dest: Address;
  /** host[:port] as the target has it: the Host field sent on. */
  authority: string;
  /** path and query exactly as the client sent them (RFC 9110 §7.7: a proxy does not rewrite them); `*` for a server-wide OPTIONS. */
  path: string;
}

/**
 * `http://authority[/path][?query]`; anything else is not a proxy request (RFC 9112 §3.2.2).
 * `method`: an OPTIONS with neither path nor query asks about the server as a whole, and goes
 * on as `*` (RFC 9112 §3.2.4: the last proxy MUST send the asterisk-form).
 */
export function absoluteTarget(target: string, method?: string): AbsoluteTarget {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) throw new ProtocolError('origin-form request: a proxy needs an absolute URL');
  const m = /^http:\/\/([^/?#]*)([^#]*)/i.exec(target);
  if (!m) throw new ProtocolError(`${clipForLog(target.slice(0, target.indexOf(':')))}:// is not forwarded: use CONNECT`);
  const authority = m[1]!;
  // RFC 9110 §4.2.4: no userinfo in an http URI; it would be sent on as part of Host.
  if (authority.includes('@')) throw new ProtocolError('userinfo in the request target');
  let url: URL;
  try {
    url = new URL(`http://${authority}/`);
  } catch {
    throw new ProtocolError('malformed URL');
  }
  if (url.hostname === '') throw new ProtocolError('no host in the request target');
  const rest = m[2]!;
  return {
    dest: { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: Number(url.port || 80) },
    authority,
    path: rest === '' ? (method === 'OPTIONS' ? '*' : '/') : rest.startsWith('?') ? `/${rest}` : rest,
  };
}

/**
 * The transfer codings of every Transfer-Encoding field, in order, lower-cased, empty list
 * elements left out (RFC 9110 §5.6.1); undefined when the message has none.
 */
export function transferCodings(message: IncomingMessage): string[] | undefined {
  let codings: string[] | undefined;
  for (let i = 0; i < message.rawHeaders.length; i += 2) {
    if (message.rawHeaders[i]!.toLowerCase() !== 'transfer-encoding') continue;
    codings ??= [];
    for (const c of message.rawHeaders[i + 1]!.split(',')) if (c.trim() !== '') codings.push(c.trim().toLowerCase());
  }
  return codings;
}

/**
 * Why an origin's response (to a forwarded request, or a refused WebSocket handshake) cannot be
 * passed on, or undefined:
 * - a status no client could read: node's client takes 000-099, which its server refuses to
 *   write (RFC 9110 §15: 100-599);
 * - another major version than 1 (otherVersion);
 * - a 101: node's client hands one that switches (Upgrade with Connection: upgrade) to its
 *   'upgrade' event, and one that does not here, as a final response without content; a
 *   client told 101 would switch to nothing (RFC 9110 §15.2.2: a 101 names its protocol);
 * - a coding besides chunked on content (codingNotRemoved).
 */
export function unusableResponse(res: IncomingMessage, method: string | undefined): string | undefined {
  const status = res.statusCode ?? 0;
  if (status < 100 || status > 999) return `origin answered status ${status}`;
  const version = otherVersion(res);
  if (version !== undefined) return version;
  if (status === 101) return 'origin answered 101 without an Upgrade to switch to';
  return codingNotRemoved(res, method);
}

/**
 * Another major version than 1 (a response, or a WebSocket's 101): node's parser takes any
 * digit.digit (HTTP/2.0, HTTP/0.9), no HTTP/1.1 message, whose framing rules it would be read
 * by (RFC 9112 §2.3); Squid reads such bytes as HTTP/0.9.
 */
export function otherVersion(res: IncomingMessage): string | undefined {
  return res.httpVersionMajor === 1 ? undefined : `origin answered in version ${res.httpVersion.slice(0, 10)}`;
}

/**
 * A coding besides chunked on content: node's client removes the chunked only, and the client
 * would get the coded bytes as the content, its Transfer-Encoding being hop-by-hop. A response
 * without content (to a HEAD, a 204, a 304) only names what a GET would get.
 */
function codingNotRemoved(res: IncomingMessage, method: string | undefined): string | undefined {
  const codings = transferCodings(res);
  const status = res.statusCode ?? 0;
  const content = method !== 'HEAD' && status !== 204 && status !== 304;
  if (!content || codings === undefined || (codings.length === 1 && codings[0] === 'chunked')) return undefined;
  return `origin response in a transfer coding the gateway does not remove (${codings.join(', ').slice(0, 100)})`;
}

/**
 * Raw header pairs minus hop-by-hop ones and those the Connection field names (RFC 9110 §7.6.1).
 * Content-Length stays whatever Connection says: it frames the message (RFC 9112 §6.2), and a
 * body sent on without it would reach the origin unframed, as requests of its own.
 */
export function endToEnd(raw: readonly string[]): Array<[string, string]> {
  const named = new Set<string>();
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'connection') for (const t of raw[i + 1]!.split(',')) named.add(t.trim().toLowerCase());
  }
  named.delete('content-length');
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name) && !named.has(name)) out.push([raw[i]!, raw[i + 1]!]);
  }
  return out;
}

/**
 * An origin response's fields as the client gets them: end-to-end ones, less a Content-Length
 * on a 1xx or a 204, which never have content (RFC 9110 §8.6): passed on, it would tell a
 * client that trusts it to take the next response's first bytes for this one's body.
 */
export function responseFields(status: number, raw: readonly string[]): Array<[string, string]> {
  const fields = endToEnd(raw);
  return status < 200 || status === 204 ? fields.filter(([k]) => k.toLowerCase() !== 'content-length') : fields;
}

/**
 * A message head as text: the start line, then each field, then the empty line. For fields
 * node's parser read (valid names and values), written as they came; latin1, as it decodes them.
 */
export function headText(startLine: string, fields: Iterable<readonly [string, string]>): string {
  let head = `${startLine}\r\n`;
  for (const [k, v] of fields) head += `${k}: ${v}\r\n`;
  return `${head}\r\n`;
}

/**
 * An interim response from the origin, passed on before the final one: a proxy forwards 1xx
 * (RFC 9110 §15.2), as Squid does. Not 100: the gateway sent the client its own when it asked,
 * and one it did not ask for tells it nothing. Not to an HTTP/1.0 client, which knows no 1xx.
 * Dropped when the client is not reading: an origin's stream of them is not buffered here.
 */
export function passInterim(req: IncomingMessage, res: ServerResponse, info: InformationEvent): void {
  const client = res.socket;
  if (info.statusCode === 100 || isHttp10(req) || res.headersSent || !client || client.destroyed || client.writableNeedDrain) return;
  client.write(headText(`HTTP/1.1 ${info.statusCode} ${reasonPhrase(info.statusMessage) ?? ''}`, responseFields(info.statusCode, info.rawHeaders)), 'latin1');
}

/** What node's client reports of a 1xx response (its 'information' event). */
export interface InformationEvent {
  statusCode: number;
  statusMessage: string;
  rawHeaders: string[];
}

