// The first bytes a SOCKS upstream sends while `socks` runs a handshake on its stream. They
// tell a server of another kind (an HTTP server's "HTTP/", a SOCKS5 method choice to our SOCKS4
// request) from a SOCKS server's refusal, which `socks` reports in its own words for whichever
// step the bytes then failed.

import type { Socket } from 'node:net';
import { ConnectTimeoutError, type GatewayError } from '../errors.js';
import { fromSocksError, UpstreamHandshakeError, UpstreamUnreachableError } from './socks5-errors.js';
import { describeAnswer, HTTP_NOT_SOCKS } from './wrong-kind.js';

/** The method choice (2 bytes), RFC 1929's status when it chose 0x02 (2 more), then the reply's VER. */
export const FIRST_BYTES = 5;

export interface FirstBytes {
  /** What came so far, at most FIRST_BYTES. */
  answered(): Buffer;
  /** Stops listening; what came is kept. */
  stop(): void;
}

/** Keeps the first FIRST_BYTES bytes `socket` reads from now on; one listener, gone once they are in. */
export function watchFirstBytes(socket: Socket): FirstBytes {
  const first = Buffer.alloc(FIRST_BYTES);
  let got = 0;
  const onData = (chunk: Buffer): void => {
    got += chunk.copy(first, got);
    if (got === FIRST_BYTES) socket.off('data', onData);
  };
  socket.on('data', onData);
  return { answered: () => first.subarray(0, got), stop: () => void socket.off('data', onData) };
}

/**
 * Why the upstream is no SOCKS server of `version`, from its first bytes: none before its FIN
 * (`ended`: it closed on our greeting, or our SOCKS4 request), or a first byte that is no VER
 * of that version (RFC 1928 §3's method choice; SOCKS4's reply has VN 0, or 4 from some
 * servers). Undefined otherwise.
 */
export function wrongSocksServer(version: 4 | 5, answered: Buffer, ended: boolean, request = 'CONNECT'): string | undefined {
  if (answered.length === 0) return ended ? `closed the connection before answering ${version === 5 ? 'our greeting' : request}` : undefined;
  const ok = version === 5 ? answered[0] === 5 : answered[0] === 0 || answered[0] === 4;
  return ok ? undefined : `not a SOCKS${version} server: ${describeAnswer(answered)}`;
}

/** What a SOCKS upstream that connected and then said nothing was not answering, for the timeout's words. */
export function unanswered(version: 4 | 5, got: number, request = 'CONNECT'): string {
  if (got > 0) return 'our handshake';
  // An HTTP proxy (tinyproxy, squid) waits for a request line in silence.
  return version === 5 ? `our greeting (${HTTP_NOT_SOCKS})` : request;
}

/** What the upstream sent before a handshake on a connection of its own failed. */
export interface Seen {
  version: 4 | 5;
  answered: Buffer;
  ended: boolean;
}

/**
 * A BIND's or UDP ASSOCIATE's handshake failure (`what`), read with what the upstream sent: silent
 * to the deadline (`timedOut`, after `ms`), a server of another kind, else `socks`'s own words.
 * `request`: what a SOCKS4 upstream was sent, for the words.
 */
export function handshakeFailure(name: string, what: string, err: unknown, seen: Seen, timedOut: boolean, ms: number, request = 'CONNECT'): GatewayError {
  if (timedOut) {
    const missing = `connected, no answer to ${unanswered(seen.version, seen.answered.length, request)}`;
    return new UpstreamUnreachableError(name, new ConnectTimeoutError(`upstream "${name}" ${what}`, ms, missing), 'silent');
  }
  const wrong = wrongSocksServer(seen.version, seen.answered, seen.ended, request);
  return wrong === undefined ? fromSocksError(name, err) : new UpstreamHandshakeError(name, wrong);
}
