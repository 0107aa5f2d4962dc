// Address syntax for the config checks: loopback (the open-proxy rule), DNS server host:port,
// health-check targets and the hosts upstreams dial.

import { BlockList, isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { endsInNumber } from './domains.js';

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
  if (!m || port < 1 || port > 65535) throw new Error(`health_check.target must be host:port, got "${withoutCredentials(target)}"`);
  const host = (m[1] ?? m[2])!;
  const bad = dialHostProblem(host);
  if (bad !== undefined) throw new Error(`health_check.target's host: ${bad}`);
  return { host, port };
}

/**
 * `text` for a message, without what a pasted proxy URL or list line holds after the host:
 * `user:pass@host` keeps what follows the last "@", `host:port:user:pass` its host and port,
 * `host,port,user,pass` (or with ; or |) its first field.
 * A password may hold "@" or ":" itself: text that reads both ways keeps only what comes
 * before its first ":" (the host of the one, the user of the other), never part of a password.
 * A query (`?token=…`, a DoH URL's key) keeps its names and never its values.
 * Errors reach `check`, the reload log line and POST /api/reload, where no password may.
 */
export function withoutCredentials(text: string): string {
  // After the user info is gone: a "?" in a password is no query.
  return withoutQueryValues(withoutUserInfo(text));
}

function withoutUserInfo(text: string): string {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(text)?.[0] ?? '';
  const rest = text.slice(scheme.length);
  // A list line exported with , ; or | (10.0.0.1,1080,user,pass): what comes before its first separator.
  if (/[,;|]/.test(rest)) {
    const cut = rest.search(/[:@,;|]/);
    return `${scheme}${rest.slice(0, cut)}${rest[cut]}…`;
  }
  const fields = rest.split(':');
  const listLine = fields.length > 2 && !fields[0]!.includes('@') && /^\d+$/.test(fields[1]!);
  const at = rest.lastIndexOf('@');
  // After the last "@" of user:pass@host:port comes host[:port]; `host:port@user:pass` (a
  // provider's export) has a user and password there: it reads both ways.
  // A user info that is host:port itself (a password of digits) reads both ways too.
  const hostAfter = at !== -1 && /^(?:\[[^\]]*\]|[^:]*)(?::\d*)?(?:[/?#]|$)/.test(rest.slice(at + 1)) && !/^(?:\[[^\]]*\]|[^:@]*):\d+$/.test(rest.slice(0, at));
  if (at !== -1) return listLine || !hostAfter ? `${scheme}${fields[0]}:…` : `${scheme}…@${rest.slice(at + 1)}`;
  return listLine ? `${scheme}${fields[0]}:${fields[1]}:…` : text;
}

/** `a=1&b` → `a=…&…`: what follows the first "?" keeps only its names. */
function withoutQueryValues(text: string): string {
  const q = text.indexOf('?');
  if (q === -1) return text;
  const params = text.slice(q + 1).split('&').map((p) => (p.includes('=') ? `${p.slice(0, p.indexOf('=') + 1)}…` : '…'));
  return `${text.slice(0, q + 1)}${params.join('&')}`;
}

/** RFC 1123 §2.1 labels (letters, digits, inner hyphens), and `_`, which internal names carry. */
const DNS_LABEL = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$/i;

/**
 * Why `host`, which an upstream, a pool member or a health check dials, never could be, or
 * undefined for an IP literal (IPv6 without brackets) or a DNS name: labels of 1-63
 * characters, 253 at most, one trailing dot allowed. A name ending in a number is an IPv4
 * address mistyped (`10.0.0.256`, `10.1`): getaddrinfo and c-ares would each read it their own way.
 */
export function dialHostProblem(host: string): string | undefined {
  if (isIP(host) !== 0) return undefined;
  const safe = withoutCredentials(host);
  const shown = JSON.stringify(safe.length > 100 ? `${safe.slice(0, 100)}…` : safe);
  if (safe !== host) return `${shown}: a host is a name or an address alone; give the user and password as username and password`;
  if (host.startsWith('[') && host.endsWith(']') && isIP(host.slice(1, -1)) === 6) return `${shown}: write an IPv6 address without brackets`;
  const name = host.endsWith('.') ? host.slice(0, -1) : host;
  if (name.length > 0 && name.length <= 253 && name.split('.').every((label) => DNS_LABEL.test(label))) {
    return endsInNumber(name.toLowerCase()) ? `${shown} is not an IP address, and a DNS name cannot end in a number` : undefined;
  }
  // A member URL's host arrives percent-encoded (socks5://bücher.example), a config value as written.
  let unicode = host;
  try {
    unicode = decodeURIComponent(host);
  } catch {
    // not percent-encoding: judged as written
  }
  // eslint-disable-next-line no-control-regex
  const ascii = /[^\x00-\x7f]/.test(unicode) ? domainToASCII(unicode) : '';
  if (ascii !== '' && dialHostProblem(ascii) === undefined) return `${shown}: write an internationalized name in its ASCII form, "${ascii}"`;
  return `${shown} is not an IP address or a DNS name (labels of 1-63 letters, digits, "-" and "_", none starting or ending with "-"; 253 characters at most)`;
}
