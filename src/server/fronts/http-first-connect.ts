// The adapter for one node:http cost: most HTTP proxy clients (a crawler's HTTPS fetches) open
// with a CONNECT whose head arrives whole in their first write, and handing such a socket to an
// http.Server costs more per connection than the rest of the tunnel's setup: its per-socket
// state and listener wrappers, its parser consuming the handle and giving it back at the head's
// end. Here that head is read by the same parser (node's llhttp binding and its IncomingMessage,
// from node's own `_http_common`, set up as lib/_http_server.js sets it up), on the bytes the
// sniffer already holds, with no server involved. Anything else (another method, a head still
// incomplete, a head the parser refuses) is left to the http.Server, with the same bytes, which
// answers it as it always does. Where this Node's module does not look as expected, every
// connection goes to the http.Server. (`_http_common` is one of node's internal `_http_*`
// modules, a later Node may deprecate or drop it; without it every head goes to the server.)

import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

/** The parser binding as lib/_http_common.js pools it (only what is used here). */
interface Parser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number, connections: undefined): void;
  execute(data: Buffer): number | Error;
  socket: Socket | null;
  maxHeaderPairs: number;
  /** Called at a complete head with the message node built for it; the result says whether a body follows (2: none, the message switches protocols). */
  onIncoming: ((req: IncomingMessage, shouldKeepAlive: boolean) => number) | null;
}

interface HttpCommon {
  HTTPParser: { REQUEST: number; kLenientNone: number; kLenientAll: number };
  parsers: { alloc(): Parser };
  freeParser(parser: Parser, req: IncomingMessage | null, socket: Socket | null): void;
  isLenient(): boolean;
}

function load(): HttpCommon | null {
  try {
    const m = createRequire(import.meta.url)('_http_common') as Partial<HttpCommon> | undefined;
    const p = m?.HTTPParser;
    const ok =
      typeof p?.REQUEST === 'number' &&
      typeof p.kLenientNone === 'number' &&
      typeof p.kLenientAll === 'number' &&
      typeof m?.parsers?.alloc === 'function' &&
      typeof m.freeParser === 'function' &&
      typeof m.isLenient === 'function';
    return ok ? (m as HttpCommon) : null;
  } catch {
    return null;
  }
}

const common = load();

/** What a method token is followed by in a request line (RFC 9112 §3). */
const CONNECT_SP = Buffer.from('CONNECT ', 'latin1');

export interface FirstConnect {
  /** The head as node's server would have handed it to a 'connect' listener. */
  req: IncomingMessage;
  /** What the client sent after the head: the tunnel's first bytes. */
  rest: Buffer;
}

export interface HeadLimits {
  /** As http.Server's maxHeaderSize: a longer head fails to parse. */
  maxHeaderSize: number;
  /** As http.Server's maxHeadersCount: fields past this many are dropped by node. */
  maxHeadersCount: number;
}

/**
 * The CONNECT head `bytes` open with, parsed by node's parser as its server would parse it,
 * when it is whole in them and parses; undefined otherwise (nothing is consumed: the caller
 * hands the same bytes to the http.Server). `socket` becomes the message's `socket`.
 */
export function connectInFirstRead(socket: Socket, bytes: Buffer, limits: HeadLimits): FirstConnect | undefined {
  if (!common || bytes.length <= CONNECT_SP.length || bytes.compare(CONNECT_SP, 0, CONNECT_SP.length, 0, CONNECT_SP.length) !== 0) return undefined;
  const { HTTPParser, parsers, freeParser, isLenient } = common;
  const parser = parsers.alloc();
  // As lib/_http_server.js's connectionListenerInternal: the same type, limits and leniency
  // (--insecure-http-parser; the front's server leaves insecureHTTPParser unset).
  parser.initialize(HTTPParser.REQUEST, { type: 'HTTPINCOMINGMESSAGE' }, limits.maxHeaderSize, isLenient() ? HTTPParser.kLenientAll : HTTPParser.kLenientNone, undefined);
  parser.socket = socket;
  parser.maxHeaderPairs = limits.maxHeadersCount << 1;
  let req: IncomingMessage | undefined;
  parser.onIncoming = (incoming) => {
    req = incoming;
    return 2; // no body: a CONNECT switches to the tunnel at its head's end (RFC 9110 §9.3.6)
  };
  let parsed: number | Error;
  try {
    parsed = parser.execute(bytes);
  } finally {
    freeParser(parser, null, null);
  }
  // A message made but not taken is only let go: destroying it would destroy its socket.
  if (req === undefined || typeof parsed !== 'number' || req.method !== 'CONNECT') return undefined;
  return { req, rest: bytes.subarray(parsed) };
}
