// What an upstream that does not speak the protocol it was configured with answered instead,
// in words for the access log: the first bytes it sent, and which kind of server sends those,
// with the setting that would match it. Pure: bytes in, text out.

/** For an HTTP proxy's answer, or its silence, where a SOCKS server was expected: it waits for a request line. */
export const HTTP_NOT_SOCKS = 'an HTTP proxy? type: http / http://';

/** At most this many of the bytes are shown. */
const SHOWN = 8;

/** The server that answers with these bytes, and how an upstream of that kind is configured. */
const KINDS: ReadonlyArray<{ test: (b: Buffer) => boolean; hint: string }> = [
  // RFC 1928 §3: the method choice (VER 5, METHOD), 05 ff when none of ours is acceptable.
  { test: (b) => b.length >= 2 && b[0] === 0x05, hint: 'a SOCKS5 server? type: socks5 / socks5://' },
  // SOCKS4's reply: VN 0, CD 0x5A-0x5D.
  { test: (b) => b.length >= 2 && b[0] === 0x00 && b[1]! >= 0x5a && b[1]! <= 0x5d, hint: 'a SOCKS4 server? type: socks4 / socks4://' },
  // RFC 8446 §5.1: a TLS record (handshake 0x16 or alert 0x15), legacy version 3.x.
  { test: (b) => b.length >= 2 && (b[0] === 0x15 || b[0] === 0x16) && b[1] === 0x03, hint: 'a TLS port? tls: true / https://' },
  { test: (b) => b.subarray(0, 5).toString('latin1') === 'HTTP/', hint: HTTP_NOT_SOCKS },
];

/** `answered 05 ff (a SOCKS5 server? ...)`, or `answered "HTTP/"` as text when it is printable ASCII. */
export function describeAnswer(bytes: Buffer): string {
  const head = bytes.subarray(0, SHOWN);
  const more = bytes.length > SHOWN ? '…' : '';
  const shown = /^[\x20-\x7e]+$/.test(head.toString('latin1')) ? JSON.stringify(head.toString('latin1') + more) : `${head.toString('hex').replace(/(..)(?!$)/g, '$1 ')}${more}`;
  const kind = KINDS.find((k) => k.test(bytes));
  return kind ? `answered ${shown} (${kind.hint})` : `answered ${shown}`;
}

/** For a plain-text answer, or silence, where TLS was expected (tls: true towards a plain HTTP proxy). */
export const PLAIN_NOT_TLS = 'a plain HTTP proxy? tls: false / http://';
/**
 * For a close with no answer where plain HTTP was expected: a TLS server closes on a request
 * it cannot read (openssl s_server, node's tls), and so does Dante on one that is no SOCKS.
 */
export const TLS_NOT_PLAIN = 'a TLS port? tls: true / https://; a SOCKS server? type: socks5 / socks5://';
