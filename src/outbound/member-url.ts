// Pool members given inline: `socks5://user:pass@host:port`. The display name (for logs,
// metrics and sticky hashing) is the URL without the password.

import { isIPv6 } from 'node:net';
import type { Socks5UpstreamConfig } from '../config/types.js';

export interface MemberUrl {
  /** `socks5://user@host:port`: never the password. */
  display: string;
  config: Socks5UpstreamConfig;
}

const SCHEMES = new Set(['socks5:', 'socks5h:']);

export function looksLikeUrl(member: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(member);
}

/**
 * Parses a member URL; throws an Error whose message names the problem (never the password).
 * `socks5h://` and `socks5://` both send names to the upstream (the product's default);
 * `?remote_dns=false` resolves here instead.
 */
export function parseMemberUrl(text: string): MemberUrl {
  // A raw "/", "?" or "#" in the password ends the authority early: the URL parser would take
  // part of the password for the host or port. Refuse, rather than connect somewhere else.
  const rest = text.slice(text.indexOf('://') + 3);
  const authorityEnd = rest.search(/[/?#]/);
  if (authorityEnd !== -1 && rest.lastIndexOf('@') > authorityEnd) {
    throw new Error(`"/", "?" and "#" in a user or password must be percent-encoded: ${redact(text)}`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new Error(`not a URL: ${redact(text)}`);
  }
  if (!SCHEMES.has(url.protocol)) throw new Error(`unsupported scheme "${url.protocol}" in ${redact(text)} (socks5:// only)`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (!host) throw new Error(`no host in ${redact(text)}`);
  const port = url.port === '' ? 1080 : Number(url.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in ${redact(text)}`);
  const remoteDns = url.searchParams.get('remote_dns');
  if (remoteDns !== null && remoteDns !== 'true' && remoteDns !== 'false') {
    throw new Error(`remote_dns must be true or false in ${redact(text)}`);
  }
  const username = url.username === '' ? undefined : percentDecoded(url.username, text);
  const password = url.password === '' ? undefined : percentDecoded(url.password, text);
  const hostText = isIPv6(host) ? `[${host}]` : host;
  const config: Socks5UpstreamConfig = { type: 'socks5', host, port, remote_dns: remoteDns !== 'false' };
  if (username !== undefined) config.username = username;
  if (password !== undefined) config.password = password;
  const user = url.username === '' ? '' : `${url.username}@`;
  return { display: `socks5://${user}${hostText}:${port}`, config };
}

/** `%zz` or a `%` cut short is not an encoding: say so, rather than URIError's "URI malformed". */
function percentDecoded(part: string, text: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(`bad percent-encoding in the user or password of ${redact(text)}`);
  }
}

/**
 * The text without anything that may be a password, for error messages. In a URL the user
 * info runs to the last "@" (a raw "@", "/" or "#" may sit in the password); a URL without
 * "@" whose port is not a number may be `user:pass` cut short. Text that is not a URL at all
 * may be a proxy-list line (`host:port:user:pass`, `user:pass@host:port`): only its first field.
 */
export function redact(text: string): string {
  const url = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(text);
  if (!url) {
    const cut = text.search(/[:@]/);
    return cut === -1 ? text : `${text.slice(0, cut)}:…`;
  }
  const scheme = url[1]!;
  const rest = url[2]!;
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    const colon = rest.indexOf(':');
    return colon === -1 || colon > at ? text : `${scheme}${rest.slice(0, colon)}@${rest.slice(at + 1)}`;
  }
  const end = rest.search(/[/?#]|$/);
  if (/^(?:\[[^\]]*\]|[^:]*)(?::\d*)?$/.test(rest.slice(0, end))) return text;
  return `${scheme}${rest.slice(0, rest.indexOf(':'))}:…`;
}

/**
 * `members_file` content: one URL a line; blank lines and `#` comments (at the start of a line
 * or after a space) ignored. Line numbers are 1-based. A `#` inside a URL stays: cutting there
 * would turn `user:123#rest@host` into a member `user:123` with part of the password shown.
 */
export function parseMembersFile(text: string): { line: number; url: string }[] {
  const out: { line: number; url: string }[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const hash = raw.search(/(?:^|\s)#/);
    const line = (hash === -1 ? raw : raw.slice(0, hash)).trim();
    if (line !== '') out.push({ line: i + 1, url: line });
  });
  return out;
}
