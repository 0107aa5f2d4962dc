// `members_file`: one member a line, as proxy providers hand out their lists. A line is
//   URL                         socks5://user:pass@host:port (any member scheme, #tags allowed)
//   host:port
//   host:port:user:pass         the password runs to the end of the member (it may hold ":" and "@")
//   user:pass@host:port         the user info runs to the last "@" (a port that is a number follows it)
// the last three with the pool's `members_scheme`, each optionally followed by
// `#key=value,key=value` tags. A line whose first non-blank is "#" is a comment, as is
// "# text" after the member that is not tags. A "#" in a proxy-list password cannot be
// written (it starts the tags): such a member needs the URL form, percent-encoded.
// `host:port@user:pass` (a provider export form) is refused; with a password of digits it
// reads as user:pass@host:port too, and the reading whose host looks more like one decides.

import { isIP } from 'node:net';
import type { MemberScheme } from '../config/types.js';
import { looksLikeUrl, memberOf, parseMemberUrl, parseTags, redact, type MemberUrl } from '../config/member-url.js';

export type MembersFileEntry = { line: number; col: number } & ({ member: MemberUrl } | { error: string });

/** Every member line of `text`, parsed, or the reason it cannot be (never quoting a password). */
export function parseMembersFile(text: string, scheme: MemberScheme): MembersFileEntry[] {
  const out: MembersFileEntry[] = [];
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const entry = parseMemberLine(raw, scheme);
      if (entry) out.push({ line: i + 1, ...entry });
    });
  return out;
}

/** One line: undefined for a blank line or a comment; `col` (1-based) points at the member, or at its bad tags. */
export function parseMemberLine(raw: string, scheme: MemberScheme): ({ col: number } & ({ member: MemberUrl } | { error: string })) | undefined {
  const start = raw.search(/\S/);
  if (start === -1 || raw[start] === '#') return undefined;
  const token = /^\S+/.exec(raw.slice(start))![0];
  const rest = raw.slice(start + token.length);
  const afterCol = start + token.length + (rest.length - rest.trimStart().length) + 1;
  const after = rest.trim();
  let member: MemberUrl;
  try {
    member = looksLikeUrl(token) ? parseMemberUrl(token) : parseListForm(token, scheme);
  } catch (err) {
    const message = (err as Error).message;
    const hash = looksLikeUrl(token) ? -1 : token.indexOf('#');
    return { col: message.startsWith('tags ') && hash !== -1 ? start + hash + 1 : start + 1, error: message };
  }
  if (after === '') return { col: start + 1, member };
  if (!after.startsWith('#')) return { col: afterCol, error: `unexpected text after the member ${shownMember(token)}` };
  // After a blank: `#key=value` tags, or a comment ("# first", "#second").
  if (!after.includes('=')) return { col: start + 1, member };
  try {
    member.tags = { ...member.tags, ...parseTags(after.slice(1), () => shownMember(token)) };
  } catch (err) {
    return { col: afterCol, error: (err as Error).message };
  }
  return { col: start + 1, member };
}

/** `host:port`, `host:port:user:pass` or `user:pass@host:port`, with `#tags` stuck on the end. */
function parseListForm(token: string, scheme: MemberScheme): MemberUrl {
  const hash = token.indexOf('#');
  const body = hash === -1 ? token : token.slice(0, hash);
  const { host, port, userinfo } = splitListForm(body);
  const where = (): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;
  if (!/^\d{1,5}$/.test(port)) throw new Error(`bad port in ${host}:…`);
  const colon = userinfo?.indexOf(':') ?? -1;
  const username = colon === -1 ? userinfo : userinfo!.slice(0, colon);
  const password = colon === -1 ? undefined : userinfo!.slice(colon + 1);
  const member = memberOf({ scheme, host, port: Number(port), username, password }, where);
  member.tags = hash === -1 ? {} : parseTags(token.slice(hash + 1), where);
  return member;
}

const EXPECTED = 'expected host:port, host:port:user:pass or user:pass@host:port';

const HOST_PORT = /^(\[[^\]]*\]|[^:@[\]]+):(\d+)$/;

/** A line's leading host:port, its port a number, and what follows it: ":" (host:port:user:pass) or "@". */
const LEAD_HOST_PORT = /^(\[[^\]]*\]|[^:@[\]]+):(\d+)([:@])/;

const unbracket = (h: string): string => (h.startsWith('[') ? h.slice(1, -1) : h);

/** 2 for an IP address, 1 for a dotted name or localhost, 0 for one word: how surely `host` is a host rather than a user. */
function hostLikeness(host: string): number {
  if (isIP(host) !== 0) return 2;
  return /\.[^.]/.test(host) || host.toLowerCase() === 'localhost' ? 1 : 0;
}

/**
 * `user:pass@host:port` when what follows the last "@" is exactly host:port, its port a number
 * (`10.0.0.1:1080:user:p@ss:word` is a password with "@" and ":", not a host "ss"); otherwise
 * `host:port[:user[:pass]]`, the password running to the end (it may hold ":" and "@").
 */
function splitListForm(body: string): { host: string; port: string; userinfo: string | undefined } {
  const at = body.lastIndexOf('@');
  const tail = at === -1 ? null : HOST_PORT.exec(body.slice(at + 1));
  // A line that starts with host:port reads both ways when a port number also follows its last "@"
  // (a password of digits, or one holding "@"): the reading whose host looks more like one wins.
  // A "port" past 65535 (john.doe:123456@proxy:3128) is a password: that line reads one way only.
  // Not after an IP address, which no reading makes a username: that port is a bad one.
  const lead = LEAD_HOST_PORT.exec(body);
  const leadLike = lead === null ? -1 : hostLikeness(unbracket(lead[1]!));
  const leadIsHost = lead !== null && ((Number(lead[2]) >= 1 && Number(lead[2]) <= 65535) || leadLike === 2);
  const leadWins = leadIsHost && (tail === null || leadLike > hostLikeness(unbracket(tail[1]!)));
  if (tail && !leadWins) return { host: unbracket(tail[1]!), port: tail[2]!, userinfo: body.slice(0, at) };
  if (leadWins && lead![3] === '@') {
    // Some providers export host:port@user:pass. Not read: that form would take a user:pass@host:port
    // line with a password of digits (user:1234@proxy:8080) for a host "user". A line meant the
    // documented way round (john.doe:1234@proxy:3128, a dotted user) is said unambiguously as a URL.
    throw new Error(`${EXPECTED}, got ${lead![1]}:…@…, which reads as host:port@user:pass: write user:pass@host:port, or, if that is what it is, a URL (socks5://user:pass@host:port)`);
  }
  const m = /^(\[[^\]]*\]|[^:@[\]]+):([^:]*)(?::(.*))?$/s.exec(body);
  if (!m) {
    // redact keeps a line with no separator whole (a host, for it); here such a line is no member
    // and may be a password on a line of its own: the position says which line, the text is left out.
    const shown = redact(body);
    // No ":" and no list separator: one word, an "@" in it or not (redact reads user@host there).
    // An "@" before any separator (`p@ss:word`) leaves no host:port after it: what redact would keep
    // before the "@" may be the start of a password too.
    const got = !/[:,;|]/.test(body)
      ? 'a line with no ":" (not shown: it may be a password)'
      : body.search(/[:@,;|]/) === body.indexOf('@')
        ? 'a line with no host:port after its "@" (not shown: it may be a password)'
        : shown;
    throw new Error(`${EXPECTED} (an IPv6 host in brackets: [::1]:1080), got ${got}`);
  }
  return { host: unbracket(m[1]!), port: m[2]!, userinfo: m[3] };
}

/**
 * A member read well, for a message: a URL without its password, a list line by its host:port
 * as splitListForm read it (what follows a password's "@" may look like host:port too).
 */
function shownMember(token: string): string {
  if (looksLikeUrl(token)) return redact(token);
  const hash = token.indexOf('#');
  try {
    const { host, port } = splitListForm(hash === -1 ? token : token.slice(0, hash));
    return `${host.includes(':') ? `[${host}]` : host}:${port}`;
  } catch {
    return '…';
  }
}
