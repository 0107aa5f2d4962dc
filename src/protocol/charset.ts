// Credentials on the wire carry no charset (RFC 1929, RFC 7617 leaves it to the client): curl,
// Chromium and the `socks` package send UTF-8; python-requests, Scrapy and Java's
// SocksSocketImpl send ISO-8859-1. Pure: shared by the SOCKS5 and HTTP fronts.

/** Throws on bytes that are not UTF-8, so they can be read as ISO-8859-1 instead. */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Bytes that are valid UTF-8 read as UTF-8, any others as ISO-8859-1 (one char a byte), so
 * `pässwort` logs in from either kind of client. Never U+FFFD: that made every password with
 * a stray byte the same string, and none of them the one configured.
 */
export function decodeCredential(bytes: Uint8Array): string {
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
  }
}
