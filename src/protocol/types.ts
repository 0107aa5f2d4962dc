import type { Cmd } from './constants.js';

/** A SOCKS address as on the wire: `host` is dotted IPv4, IPv6 text (no brackets) or a domain name. */
export interface Address {
  host: string;
  port: number;
}

export type HandshakeEvent =
  | { type: 'greeting'; methods: number[] }
  | { type: 'auth'; username: string; password: string }
  | { type: 'request'; cmd: Cmd; dest: Address };

/** RFC 1928 §7: one UDP datagram as relayed between client and gateway. */
export interface UdpDatagram {
  frag: number;
  dest: Address;
  payload: Buffer;
}
