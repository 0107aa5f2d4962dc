// Pool members given as URLs: `socks5://`, `socks5h://`, `socks4://`, `socks4a://`,
// `http://`, `https://`, with `user:pass@` (percent-encoded) and `#key=value,key=value`
// tags. The display name (for logs, metrics, the API and sticky hashing) is the URL
// without the password and without the tags; a username that has no password shows as a fingerprint.

import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { dialHostProblem } from './net.js';
import type { MemberScheme, ProxyUpstreamConfig } from './types.js';

export type Tags = Record<string, string>;

export interface MemberUrl {
  /** `socks5://user@host:port`: never the password; `socks5://…1a2b3c4d@host:port` (loginFingerprint) for a username without one. */
  display: string;
  config: ProxyUpstreamConfig;
  tags: Tags;
}

/** Where a member came from, in the parts every form has. */
export interface MemberParts {
  scheme: MemberScheme;
  host: string;
  port: number | undefined;
  username?: string | undefined;
  password?: string | undefined;
  /** The username as written, when it was percent-decoded (a URL's): what a list separator is looked for in. */
  usernameAsWritten?: string | undefined;
  /** `?remote_dns=` of a URL; the scheme's default when absent. */
  remoteDns?: boolean | undefined;
}

const SCHEMES: ReadonlySet<string> = new Set<MemberScheme>(['socks5', 'socks5h', 'socks4', 'socks4a', 'http', 'https']);
const TAG = /^[A-Za-z0-9_]+$/;
export const EXPECTED_URL = 'expected socks5://, socks5h://, socks4://, socks4a://, http:// or https:// [user:pass@]host:port';

/** The member has the URL's shape but a host that can never be dialed: the shape needs no reminder. */
export class MemberHostError extends Error {}

export function looksLikeUrl(member: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(member);
}

/**
 * Parses a member URL; throws an Error whose message names the problem (never the password).
 * `socks5h://` and `socks5://` both send names to the upstream (the product's default), as
 * `socks4a://` does; `socks4://` resolves here and sends IPv4 (SOCKS4 proper).
 * `?remote_dns=true|false` overrides either.
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
  const scheme = url.protocol.slice(0, -1).toLowerCase();
  if (!SCHEMES.has(scheme)) throw new Error(`unsupported scheme "${url.protocol}" in ${redact(text)}`);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const remoteDns = url.searchParams.get('remote_dns');
  if (remoteDns !== null && remoteDns !== 'true' && remoteDns !== 'false') {
    throw new Error(`remote_dns must be true or false in ${redact(text)}`);
  }
  const parts: MemberParts = {
    scheme: scheme as MemberScheme,
    host,
    port: url.port === '' ? undefined : Number(url.port),
    username: url.username === '' ? undefined : decode(url.username, text),
    password: url.password === '' ? undefined : decode(url.password, text),
    usernameAsWritten: userAsWritten(rest),
    remoteDns: remoteDns === null ? undefined : remoteDns === 'true',
  };
  const member = memberOf(parts, () => redact(text));
  // The fragment is the tags; the URL parser percent-encodes it, so read it back decoded.
  member.tags = parseTags(url.hash === '' ? '' : decode(url.hash.slice(1), text), () => redact(text));
  return member;
}

/** The user of a URL's authority (what follows `scheme://`) as written, before any decoding: up to its ":" or the last "@". */
function userAsWritten(rest: string): string | undefined {
  const at = rest.lastIndexOf('@');
  if (at === -1) return undefined;
  const info = rest.slice(0, at);
  const colon = info.indexOf(':');
  return colon === -1 ? info : info.slice(0, colon);
}

/** A member from its parts (a URL's or a proxy-list line's); throws on a bad host, port or credential. */
export function memberOf(parts: MemberParts, shown: () => string): MemberUrl {
  const { scheme } = parts;
  if (!parts.host) throw new Error(`no host in ${shown()}`);
  const badHost = dialHostProblem(parts.host);
  if (badHost !== undefined) throw new MemberHostError(`bad host in ${shown()}: ${badHost}`);
  const host = canonicalIPv6(parts.host);
  const port = parts.port ?? defaultPort(scheme);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`bad port in ${shown()}`);
  const username = parts.username === '' ? undefined : parts.username;
  const password = parts.password === '' ? undefined : parts.password;
  // , ; and | separate the fields of a list exported from a spreadsheet (redact cuts there):
  // `user,pass@host:port` would log in as "user,pass" and name the member by the password.
  // Written percent-encoded (%7C), one is meant as part of the name.
  if (username !== undefined && /[,;|]/.test(parts.usernameAsWritten ?? username)) {
    throw new Error(`a ",", ";" or "|" in the username, which separates the fields of a proxy list (write user:pass@host:port): ${shown()}`);
  }
  const creds = { ...(username !== undefined ? { username } : {}), ...(password !== undefined ? { password } : {}) };
  let config: ProxyUpstreamConfig;
  if (scheme === 'socks4' || scheme === 'socks4a') {
    // SOCKS4 sends a USERID and nothing else: a password would silently go nowhere.
    if (password !== undefined) throw new Error(`SOCKS4 has no password: ${shown()}`);
    config = { type: 'socks4', host, port, remote_dns: parts.remoteDns ?? scheme === 'socks4a', ...creds };
  } else if (scheme === 'http' || scheme === 'https') {
    // HTTP Basic splits user-id and password at the first ":" (RFC 7617 §2): the proxy would refuse every login.
    if (username?.includes(':')) throw new Error(`a ":" in the username, which HTTP Basic auth cannot carry (RFC 7617 §2): ${shown()}`);
    config = { type: 'http', host, port, tls: scheme === 'https', remote_dns: parts.remoteDns ?? true, ...creds };
  } else {
    config = { type: 'socks5', host, port, remote_dns: parts.remoteDns ?? true, ...creds };
  }
  const shownScheme = scheme === 'socks5h' ? 'socks5' : scheme;
  // A username with no password beside it is the whole login (a provider's API key, a SOCKS4
  // USERID): the name shows a fingerprint of it, never the key. Beside a password it carries
  // the session and targeting parameters, and is shown.
  const user = username === undefined ? '' : password === undefined ? `${loginFingerprint(username)}@` : `${displayUser(username)}@`;
  return { display: `${shownScheme}://${user}${isIPv6(host) ? `[${host}]` : host}:${port}`, config, tags: {} };
}

/**
 * How a member's name shows a username that is its whole login: `…` and the first 8 hex digits
 * of its SHA-256. Two keys on one proxy are two names that do not depend on the list's order,
 * so a reload that drops one keeps the other's sticky sessions, health and bans. 32 bits give
 * nothing of a random key back; a guessable one can be confirmed (SECURITY.md).
 */
export function loginFingerprint(username: string): string {
  return `…${createHash('sha256').update(username).digest('hex').slice(0, 8)}`;
}

/**
 * An IPv6 host as the URL parser writes it (lower case, zeros compressed, a mapped IPv4
 * address in hex): a list line's `[0:0::1]:1080` is then the member a URL's [::1] is, with one
 * name in logs, metrics, the API and sticky hashing, and one member, not two, for one proxy.
 */
function canonicalIPv6(host: string): string {
  if (!isIPv6(host) || host.includes('%')) return host;
  return new URL(`http://[${host}]/`).hostname.slice(1, -1);
}

function defaultPort(scheme: MemberScheme): number {
  return scheme === 'http' ? 80 : scheme === 'https' ? 443 : 1080;
}

/** A username in a display name: only what would break the URL shape is encoded ({session} stays readable). */
function displayUser(user: string): string {
  return user.replace(/[%@:/?#\s]/g, (c) => encodeURIComponent(c));
}

function decode(part: string, text: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new Error(`bad percent-encoding in ${redact(text)}`);
  }
}

/** `key=value,key=value` (letters, digits, _); '' is no tags. */
export function parseTags(text: string, shown: () => string): Tags {
  const tags: Tags = {};
  if (text.trim() === '') return tags;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    // The tag text is not quoted: in a proxy-list line it may be the end of a password with a "#".
    if (eq === -1 || !TAG.test(key) || !TAG.test(value)) {
      throw new Error(`tags after "#" must be key=value[,key=value] (letters, digits, _) in ${shown()}`);
    }
    tags[key] = value;
  }
  return tags;
}

/** A URL's host[:port] as written (the port may be empty or cut short): no list separator, no second ":". */
const HOST_PORT_TEXT = /^(?:\[[^\]]*\]|[^:,;|]*)(?::\d*)?$/;

/** User info that is a host:port too, its port read as a password: the text reads both ways. */
const HOST_PORT_USER = /^(?:\[[^\]]*\]|[^:@,;|]*):\d+$/;

/**
 * The text without anything that may be a password, for error messages. In a URL the user
 * info runs to the last "@" (a raw "@", "/" or "#" may sit in the password), and only the user
 * before a ":" or a list separator (, ; or |, raw or percent-encoded) is kept (a user with
 * neither, or with an empty password, is the whole login: `…`); a URL without "@" whose port is not a number may be
 * `user:pass` cut short. A URL's query keeps its names, its tags become `#…`. Text that is not
 * a URL at all may be a proxy-list line (`host:port:user:pass`, `user:pass@host:port`, or
 * `host,port,user,pass` with , ; or |): only its first field, none of a `user@`.
 */
export function redact(text: string): string {
  return looksLikeUrl(text) ? withoutQueryOrTags(withoutUserInfo(text)) : withoutUserInfo(text);
}

/**
 * A URL's query keeps its names and its fragment (the tags) none of its text: `?key=` or `#…`
 * may be a token a provider gave, or the end of a password with a raw "?" or "#" in it.
 * Called once the user info is gone, so the first "?" or "#" ends the authority.
 */
function withoutQueryOrTags(text: string): string {
  const hash = text.indexOf('#');
  const beforeHash = hash === -1 ? text : text.slice(0, hash);
  const q = beforeHash.indexOf('?');
  const query = q === -1 ? '' : `?${beforeHash.slice(q + 1).split('&').map((p) => (p.includes('=') ? `${p.slice(0, p.indexOf('=') + 1)}…` : '…')).join('&')}`;
  return `${q === -1 ? beforeHash : beforeHash.slice(0, q)}${query}${hash === -1 ? '' : '#…'}`;
}

function withoutUserInfo(text: string): string {
  const url = /^([a-z][a-z0-9+.-]*:\/\/)(.*)$/is.exec(text);
  if (!url) {
    // Lines exported from a spreadsheet or a provider's panel separate with , ; or | instead.
    const cut = text.search(/[:@,;|]/);
    if (cut === -1) return text;
    // `user@host:port` or `user:@host:port`: a user with no password is the whole login.
    if (text[cut] === '@' || text.startsWith(':@', cut)) return '…@…';
    return `${text.slice(0, cut)}${text[cut] === ':' ? ':' : text[cut]}…`;
  }
  const scheme = url[1]!;
  const rest = url[2]!;
  const at = rest.lastIndexOf('@');
  // What follows the last "@" is no host[:port] (`host:port@user:pass`, as some providers export
  // their lists): the text reads both ways, and only what comes before its first separator is kept.
  // So does one whose user info is itself host:port (`host:port@user:1234`, a password of digits).
  if (at !== -1 && (!HOST_PORT_TEXT.test(rest.slice(at + 1).split(/[/?#]/, 1)[0]!) || HOST_PORT_USER.test(rest.slice(0, at)))) {
    const cut = rest.search(/[:@,;|]/);
    // What comes before an "@" with no password beside it is no host: it is the whole login.
    if (rest[cut] === '@' || rest.startsWith(':@', cut)) return `${scheme}…@…`;
    return `${scheme}${rest.slice(0, cut + 1)}…`;
  }
  if (at !== -1) {
    // The user before its ":"; a user with a list separator in it (raw or percent-encoded) may be
    // `user,pass`: what comes before the separator.
    const cut = /:|[,;|]|%(?:2c|3b|7c)/i.exec(rest.slice(0, at));
    // A user with no password, or an empty one (`KEY:@`), is the whole login, as in a member's name.
    if (!cut || (cut[0] === ':' && cut.index === at - 1)) return `${scheme}…@${rest.slice(at + 1)}`;
    return `${scheme}${rest.slice(0, cut.index)}${cut[0] === ':' ? '' : `${cut[0]}…`}@${rest.slice(at + 1)}`;
  }
  const end = rest.search(/[/?#]|$/);
  // A list line behind a scheme (socks5://host,port,user,pass) is no host:port: its first field only.
  if (HOST_PORT_TEXT.test(rest.slice(0, end))) return text;
  const cut = rest.search(/[:,;|]/);
  return `${scheme}${rest.slice(0, cut)}${rest[cut] === ':' ? ':' : rest[cut]}…`;
}
