// The username and password an upstream gets for one request. Pool members may carry
// templates ({session}, {user}, {NAME}) that are filled from the request's session
// parameters; every proxy outbound (socks5, socks4, http) asks here, so all fill alike.
// Providers behind one endpoint read their own parameters from the username
// (`brd-customer-c1-zone-z1-session-{session}-country-{country}`).

import { GatewayError, Rep } from '../errors.js';
import { MAX_USERID } from '../protocol/constants.js';
import type { OutboundContext } from './types.js';

export interface Credentials {
  username?: string | undefined;
  password?: string | undefined;
}

/**
 * A placeholder, with the `-KEY-` in front of it when there is one: that part goes together
 * with the value when the client did not give it (`-country-{country}` without a country).
 */
const PLACEHOLDER = /(-[A-Za-z0-9_]+-)?\{([A-Za-z0-9_]+)\}/g;

/** Names of the `{NAME}` placeholders in a member's username or password. */
export function placeholdersOf(configured: Credentials): string[] {
  const names = new Set<string>();
  for (const text of [configured.username, configured.password]) {
    if (text === undefined) continue;
    for (const m of text.matchAll(PLACEHOLDER)) names.add(m[2]!);
  }
  return [...names];
}

type TemplateContext = Pick<OutboundContext, 'user' | 'params' | 'sessionKey'>;

/** Fills one template; a placeholder without a value is left out with its `-KEY-`. */
function fill(template: string, ctx: TemplateContext): string {
  if (!template.includes('{')) return template;
  return template.replace(PLACEHOLDER, (_all, prefix: string | undefined, name: string) => {
    // `{session}` is the client's session parameter, not the fallback key (user or client IP).
    const value = name === 'user' ? ctx.user : ctx.params?.[name];
    if (value === undefined || value === '') return '';
    return `${prefix ?? ''}${value}`;
  });
}

/** The credentials to send for this request. */
export function credentialsFor(configured: Credentials, ctx: TemplateContext): Credentials {
  const { username, password } = configured;
  if (!username?.includes('{') && !password?.includes('{')) return configured;
  return {
    username: username === undefined ? undefined : fill(username, ctx),
    password: password === undefined ? undefined : fill(password, ctx),
  };
}

/**
 * RFC 1929 sends each of username and password as a length byte and 1–255 bytes. A longer
 * one (a member template filled with a long session parameter, or multi-byte characters)
 * cannot be sent: refused here, before the `socks` package would throw writing its length
 * inside a socket handler. Not the upstream's fault, and the message names no credential.
 */
export function assertRfc1929(upstream: string, c: Credentials): void {
  for (const [field, text] of [
    ['username', c.username],
    ['password', c.password],
  ] as const) {
    if (text !== undefined && Buffer.byteLength(text, 'utf8') > 255) throw new CredentialsTooLongError(upstream, field);
  }
}

/**
 * SOCKS4 gives USERID no length, but servers bound it (Dante drops a request whose USERID runs
 * to a couple of KiB, and the pool took that for the member failing). A member template filled
 * with a long session parameter from an HTTP client could so eject a member for everyone: a
 * USERID longer than the gateway's own SOCKS4 front accepts is refused here, unsent.
 */
export function assertSocks4UserId(upstream: string, username: string | undefined): void {
  if (username !== undefined && Buffer.byteLength(username, 'utf8') > MAX_USERID) throw new CredentialsTooLongError(upstream, 'USERID');
}

export class CredentialsTooLongError extends GatewayError {
  constructor(upstream: string, field: 'username' | 'password' | 'USERID') {
    const carrier = field === 'USERID' ? 'the gateway sends over SOCKS4' : 'SOCKS5 can carry';
    super('GW_ERR_CREDENTIALS_TOO_LONG', `upstream "${upstream}": ${field} longer than the 255 bytes ${carrier}`, Rep.GENERAL_FAILURE);
  }
}

/**
 * Whether `text`, which a proxy wrote (a reason phrase, an `X-Squid-Error`), repeats the
 * password we sent it: as is, read as latin1 bytes, percent-encoded, or inside the Basic
 * token (a form of a few characters only as a word of its own). Such text goes to the log
 * only as withheld.
 */
export function repeatsSecret(text: string, c: Credentials): boolean {
  if (!c.password) return false;
  const forms = [
    c.password,
    Buffer.from(c.password, 'utf8').toString('latin1'),
    encodeURIComponent(c.password),
    Buffer.from(c.password, 'utf8').toString('base64').replace(/=+$/, ''),
    Buffer.from(`${c.username ?? ''}:${c.password}`, 'utf8').toString('base64').replace(/=+$/, ''),
  ];
  return forms.some((form) => (form.length >= WHOLE_WORD_BELOW ? text.includes(form) : asWord(text, form)));
}

/**
 * A form shorter than this is found inside ordinary words ("x" in "Proxy"): it counts only
 * where it is not part of a longer word, or every refusal of such a user would be withheld.
 */
const WHOLE_WORD_BELOW = 4;
const WORD_CHAR = /[\p{L}\p{N}]/u;

/** Whether `form` occurs in `text` with no letter or digit glued to either side of it. */
function asWord(text: string, form: string): boolean {
  const glued = (i: number, edge: string): boolean => i >= 0 && i < text.length && WORD_CHAR.test(text[i]!) && WORD_CHAR.test(edge);
  for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + 1)) {
    if (!glued(at - 1, form[0]!) && !glued(at + form.length, form.at(-1)!)) return true;
  }
  return false;
}
