// Wire constants of RFC 1928 (SOCKS5), RFC 1929 (username/password), SOCKS4
// (https://www.openssh.com/txt/socks4.protocol) and its 4a extension
// (https://www.openssh.com/txt/socks4a.protocol).

/** A code table's values as a type: `Cmd` is 0x01 | 0x02 | 0x03. */
type CodeOf<T> = T[keyof T];

export const VERSION = 0x05;
export const AUTH_VERSION = 0x01; // RFC 1929 §2

/** RFC 1928 §3 METHOD. */
export const Method = { NO_AUTH: 0x00, USERPASS: 0x02, NO_ACCEPTABLE: 0xff } as const;
export type Method = CodeOf<typeof Method>;

/** RFC 1928 §4 CMD. */
export const Cmd = { CONNECT: 0x01, BIND: 0x02, UDP_ASSOCIATE: 0x03 } as const;
export type Cmd = CodeOf<typeof Cmd>;

/** RFC 1928 §5 ATYP. */
export const Atyp = { IPV4: 0x01, DOMAIN: 0x03, IPV6: 0x04 } as const;
export type Atyp = CodeOf<typeof Atyp>;

/** Greeting (≤257) + auth (≤513) + request (≤262): anything longer is not SOCKS5. */
export const MAX_HANDSHAKE_BYTES = 257 + 513 + 262;

export const SOCKS4_VERSION = 0x04;

/** SOCKS4 request CD. */
export const Socks4Cmd = { CONNECT: 0x01, BIND: 0x02 } as const;
export type Socks4Cmd = CodeOf<typeof Socks4Cmd>;

/** SOCKS4 reply CD: 90 granted, 91 rejected or failed. */
export const Socks4Reply = { GRANTED: 0x5a, REJECTED: 0x5b } as const;
export type Socks4Reply = CodeOf<typeof Socks4Reply>;

/** SOCKS4 USERID and SOCKS4a HOSTNAME are NUL-terminated with no length: past these bounds it is not SOCKS4. */
export const MAX_USERID = 255;
export const MAX_HOSTNAME = 255;

/**
 * "No bytes", shared: a zero-length Buffer cannot be written to, and a fresh one is an
 * allocation held as long as whatever holds it (a tunnel's scope, a handshake).
 */
export const EMPTY = Buffer.alloc(0);
