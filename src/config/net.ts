// Address syntax for the config checks: loopback (the open-proxy rule), DNS server host:port
// and health-check targets.

import { BlockList, isIP } from 'node:net';

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

/** `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal; undefined when malformed or port ∉ 1-65535. */
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

/** "host:port" or "[v6]:port". */
export function parseTarget(target: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(target);
  const port = Number(m?.[3]);
  if (!m || port < 1 || port > 65535) throw new Error(`health_check.target must be host:port, got "${target}"`);
  return { host: (m[1] ?? m[2])!, port };
}
