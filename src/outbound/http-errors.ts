// The one adapter from an HTTP proxy's answer to CONNECT (RFC 9110 §9.3.6, §15) to the
// reply code our client gets, and to whether the proxy itself is at fault (pools eject and
// retry on those). The choices, where HTTP and SOCKS do not line up one to one:
//
//   2xx                  success (RFC 9110 §9.3.6: any 2xx opens the tunnel)
//   401, 407             the proxy refused our credentials: 0x01 and a member fault, as a
//                        failed RFC 1929 login (tinyproxy answers 401 where 407 is meant)
//   403                  the proxy's own rules refuse this destination: 0x02, passed on
//   404                  the proxy found no such host: 0x04
//   429, other 4xx       the proxy will not serve us (rate limit, no CONNECT, a request it
//                        cannot parse): 0x01 and a member fault
//   502, 503             the proxy could not reach the destination: the errno it names in
//                        `X-Squid-Error: ERR_CONNECT_FAIL 111` (→ 0x05) or ERR_DNS_FAIL (→ 0x04)
//                        when it says; otherwise 0x01, answered but ambiguous (like SOCKS5's
//                        0x01: not counted against the member, another member tried)
//   504                  the destination did not answer in the proxy's time: 0x06
//   other 5xx            0x01, as 502
//   101, 3xx, no answer  the proxy does not speak CONNECT as we need: 0x01, a member fault
//                        (other 1xx are interim, read past up to a bound in http.ts); a close
//                        before any answer, or bytes that are no response, say so, with the
//                        kind of server such bytes come from (notAnHttpAnswer)
//   TLS failures         (an https:// proxy whose certificate does not verify): a member fault;
//                        a plain-text answer to our hello says it is no TLS port

import { constants } from 'node:os';
import { GatewayError, Rep, toRep, UpstreamRefusedError } from '../errors.js';
import { UpstreamAuthError, UpstreamHandshakeError } from './socks5-errors.js';
import { describeAnswer, PLAIN_NOT_TLS, TLS_NOT_PLAIN } from './wrong-kind.js';

/** A non-2xx answer to our CONNECT, as read off the response head (never its body). */
export class HttpProxyRefusal extends Error {
  readonly status: number;
  /** The `X-Squid-Error` header as the log may show it, when the proxy sent one. */
  readonly detail: string | undefined;
  /** What squid's detail says of the destination, read from it as sent (before any of it was withheld). */
  readonly detailRep: Rep | undefined;
  constructor(status: number, statusText: string, detail: string | undefined, detailAsSent: string | undefined = detail) {
    super(`answered CONNECT with ${status} ${statusText}`.trimEnd());
    this.name = 'HttpProxyRefusal';
    this.status = status;
    this.detail = detail;
    this.detailRep = fromSquidDetail(detailAsSent);
  }
}

const ERRNO_NAME = new Map(Object.entries(constants.errno).map(([name, n]) => [n, name]));

/** `ERR_CONNECT_FAIL 111`, `ERR_DNS_FAIL 0`: squid's words for why it could not connect. */
function fromSquidDetail(detail: string | undefined): Rep | undefined {
  const m = /^(ERR_\w+)(?:\s+(\d+))?/.exec(detail ?? '');
  if (!m) return undefined;
  if (m[1] === 'ERR_DNS_FAIL') return Rep.HOST_UNREACHABLE;
  if (m[1] === 'ERR_CONNECT_FAIL' && m[2] !== undefined) {
    const code = ERRNO_NAME.get(Number(m[2]));
    const rep = code === undefined ? Rep.GENERAL_FAILURE : toRep({ code });
    return rep === Rep.GENERAL_FAILURE ? undefined : rep;
  }
  return undefined;
}

function fromStatus(upstream: string, e: HttpProxyRefusal): GatewayError {
  const cause = new Error(e.message);
  // The access log says what the proxy answered (`403 Forbidden`, squid's ERR_ name), not only the code it maps to.
  const said = e.detail === undefined ? e.message : `${e.message} (${e.detail})`;
  const refused = (rep: Rep): GatewayError => new UpstreamRefusedError(upstream, rep, { cause }, said);
  const s = e.status;
  if (s === 401 || s === 407) return new UpstreamAuthError(upstream, e.message, { cause });
  if (s === 403) return refused(Rep.NOT_ALLOWED);
  if (s === 404) return refused(Rep.HOST_UNREACHABLE);
  if (s === 504) return refused(Rep.TTL_EXPIRED);
  if (s >= 500 && s <= 599) return refused(e.detailRep ?? Rep.GENERAL_FAILURE);
  return new UpstreamHandshakeError(upstream, e.message, { cause });
}

/**
 * What node's client failed with, when the proxy answered CONNECT as no HTTP proxy does: it
 * closed before any byte of an answer (a TLS port given without tls: true closes on a request
 * it cannot read, Dante on one that is no SOCKS), or sent bytes that are no response (a SOCKS server's method choice), which
 * node's parse error carries as `rawPacket`. Else `err` itself.
 */
export function notAnHttpAnswer(err: unknown, answered: boolean, tls: boolean): unknown {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (!answered && (code === 'ECONNRESET' || code === 'EPIPE')) return new Error(`closed the connection before answering CONNECT${tls ? '' : ` (${TLS_NOT_PLAIN})`}`);
  const raw = (err as { rawPacket?: unknown } | null)?.rawPacket;
  if (code?.startsWith('HPE_') && Buffer.isBuffer(raw) && !raw.toString('latin1', 0, 5).startsWith('HTTP/')) return new Error(`not an HTTP proxy: ${describeAnswer(raw)}`);
  return err;
}

/** Turns whatever the CONNECT exchange (or the TLS under it) failed with into a GatewayError. */
export function fromHttpError(upstream: string, err: unknown): GatewayError {
  if (err instanceof GatewayError) return err;
  if (err instanceof HttpProxyRefusal) return fromStatus(upstream, err);
  const code = (err as NodeJS.ErrnoException | null)?.code;
  const reason = (err as { reason?: unknown } | null)?.reason;
  // OpenSSL's own message is its error queue line (an address, a source path, a newline):
  // its reason says it ("wrong version number": tls: true towards a plain proxy).
  const message =
    typeof reason === 'string' && code?.startsWith('ERR_SSL_') ? `TLS with the proxy failed: ${reason}` : err instanceof Error ? err.message : String(err);
  // Node's messages name no credentials; the code says which TLS check or parse step failed.
  const said = code ? `${message} (${code})` : message;
  // A record that is no TLS at all: the proxy answered our hello in plain text.
  const hint = code === 'ERR_SSL_WRONG_VERSION_NUMBER' ? `: not a TLS port (${PLAIN_NOT_TLS})` : '';
  return new UpstreamHandshakeError(upstream, said + hint, { cause: new Error(message) });
}
