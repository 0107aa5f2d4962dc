// A destination name as a client sends it (SOCKS5 DST.ADDR, SOCKS4a HOSTNAME; a name typed into
// `socksgate route` or GET /api/route), in the one form the gateway works with from then on.

import { domainToASCII } from 'node:url';

const utf8 = new TextDecoder('utf-8', { fatal: true });

// eslint-disable-next-line no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/**
 * `name` as requests carry it on: ASCII as it is (`127.1` stays a name, for the route to refuse);
 * a name with non-ASCII characters (bücher.example) as its A-label form (xn--bcher-kva.example)
 * by the URL standard's IDNA (UTS #46), as browsers and curl convert it before they send it, so
 * rules, DNS, upstreams and the access log all see one name. A name IDNA refuses stays as it
 * is: it is not a hostname, and the route refuses it (SOCKS 0x04, HTTP 400).
 */
export function destinationName(name: string): string {
  return ASCII.test(name) ? name : domainToASCII(name) || name;
}

/**
 * The name in `buf[start, end)`: RFC 1928 §5 and SOCKS4a give no encoding, and clients that send
 * non-ASCII send UTF-8, so it is read as UTF-8 (then destinationName). Bytes that are not UTF-8
 * are read as latin1, one char a byte, for the route to refuse and the log to show.
 */
export function decodeName(buf: Buffer, start: number, end: number): string {
  const latin1 = buf.toString('latin1', start, end);
  if (ASCII.test(latin1)) return latin1;
  try {
    return destinationName(utf8.decode(buf.subarray(start, end)));
  } catch {
    return latin1;
  }
}

/**
 * A name's bytes as decodeName read them: one byte a char when every char fits (a name whose
 * bytes were not UTF-8 goes back as those bytes), else UTF-8 (a name IDNA refused, kept as sent).
 */
export function nameBytes(name: string): Buffer {
  return LATIN1.test(name) ? Buffer.from(name, 'latin1') : Buffer.from(name, 'utf8');
}

// eslint-disable-next-line no-control-regex
const LATIN1 = /^[\x00-\xff]*$/;
