// What a client wrote, cut to a bound before it reaches a log line: a refused login's name or
// a request target is free text, and a client repeating a 12 KB one would amplify the log.

/** RFC 1929's bound on a SOCKS5 username (and the SOCKS4 USERID and HOSTNAME here): 255 bytes. */
export const MAX_LOGGED_BYTES = 255;

/** `text` as it is when within the bound; else its first 255 bytes (whole characters) and "…". */
export function clipForLog(text: string): string {
  if (text.length <= MAX_LOGGED_BYTES / 3 || Buffer.byteLength(text, 'utf8') <= MAX_LOGGED_BYTES) return text;
  // A character cut in two decodes as U+FFFD at the end: dropped, the cut is marked anyway.
  return `${Buffer.from(text, 'utf8').subarray(0, MAX_LOGGED_BYTES).toString('utf8').replace(/\uFFFD+$/, '')}…`;
}
