// Wire constants of RFC 1928 (SOCKS5) and RFC 1929 (username/password).

export const VERSION = 0x05;
export const AUTH_VERSION = 0x01; // RFC 1929 §2

export const Method = {
  NO_AUTH: 0x00,
  USERPASS: 0x02,
  NO_ACCEPTABLE: 0xff,
} as const;
export type Method = (typeof Method)[keyof typeof Method];

export const Cmd = {
  CONNECT: 0x01,
  BIND: 0x02,
  UDP_ASSOCIATE: 0x03,
} as const;
export type Cmd = (typeof Cmd)[keyof typeof Cmd];

export const Atyp = {
  IPV4: 0x01,
  DOMAIN: 0x03,
  IPV6: 0x04,
} as const;
export type Atyp = (typeof Atyp)[keyof typeof Atyp];

/** Greeting (≤257) + auth (≤513) + request (≤262): anything longer is not SOCKS5. */
export const MAX_HANDSHAKE_BYTES = 257 + 513 + 262;
