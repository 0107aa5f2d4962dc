// Address syntax shared by the config checks (and reusable by the router and DNS layers):
// IP literals, CIDRs, host:port pairs and socks5:// URLs.

import { BlockList, isIP } from 'node:net';

export interface Cidr {
  family: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

/** `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128); undefined when invalid. */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return undefined;
  const max = version === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const bits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits)) return undefined;
    prefix = Number(bits);
    if (prefix > max) return undefined;
  }
  return { family: version === 4 ? 'ipv4' : 'ipv6', address, prefix };
}

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');
LOOPBACK.addSubnet('::ffff:127.0.0.0', 104, 'ipv6');

/** True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; false for wildcards and the rest. */
export function isLoopback(ip: string): boolean {
  const version = isIP(ip);
  return version !== 0 && LOOPBACK.check(ip, version === 4 ? 'ipv4' : 'ipv6');
}

export interface HostPort {
  host: string; // IPv6 without brackets
  port?: number;
}

/** `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal; undefined when malformed. */
export function parseHostPort(text: string): HostPort | undefined {
  let host = text;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracketed) {
    host = bracketed[1]!;
    portText = bracketed[2];
    if (isIP(host) !== 6) return undefined;
  } else if (isIP(text) !== 6) {
    const colon = text.lastIndexOf(':');
    if (colon !== -1) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
      if (!/^\d+$/.test(portText)) return undefined;
    }
  }
  if (host === '' || (host.includes(':') && isIP(host) !== 6)) return undefined;
  if (portText === undefined) return { host };
  const port = Number(portText);
  return port >= 1 && port <= 65535 ? { host, port } : undefined;
}

export interface Socks5Url {
  host: string; // IPv6 without brackets
  port: number;
  username?: string;
  password?: string;
}

/** `socks5://[user:pass@]host:port` with nothing after the port; undefined otherwise. */
export function parseSocks5Url(text: string): Socks5Url | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'socks5:' || url.hostname === '' || url.port === '') return undefined;
  if ((url.pathname !== '' && url.pathname !== '/') || url.search !== '' || url.hash !== '') return undefined;
  if ((url.username === '') !== (url.password === '')) return undefined;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const out: Socks5Url = { host, port: Number(url.port) };
  if (url.username !== '') {
    out.username = decodeURIComponent(url.username);
    out.password = decodeURIComponent(url.password);
  }
  return out;
}
