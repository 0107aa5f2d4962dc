// The proxy username of a crawler session: `USER(-KEY-VALUE)*`, as commercial proxy
// networks spell it (`alice-session-XYZ-lifetime-5m-country-de`). Pure: the same parser
// serves RFC 1929 logins, HTTP Basic (`Proxy-Authorization`) and `socksgate route --user`.

import { parseDuration } from '../config/duration.js';

/** Session parameters by key; `session` and `lifetime` included. */
export type SessionParams = Readonly<Record<string, string>>;

export interface ParsedUsername {
  /** The configured user the login is checked against. */
  user: string;
  params: SessionParams;
}

/** Keys and values: letters, digits and `_` (PRODUCT.md "Crawler sessions"). */
const TOKEN = /^[A-Za-z0-9_]+$/;

/**
 * What a `-KEY-VALUE` part must be, in the words every refusal of one uses: a lifetime of
 * letters and digits that is no duration (`1d`) breaks no character rule, so it is named.
 */
export const USERNAME_GRAMMAR = 'USER-KEY-VALUE..., letters, digits and _, a lifetime a duration such as 90s, 5m or 1h';

/** Why a login whose `-KEY-VALUE` part does not parse is refused, whatever its password. */
export const MALFORMED_USERNAME = `malformed session parameters in the username (${USERNAME_GRAMMAR})`;

/** Keys the pool reads itself; every other key filters members by tag. */
export const RESERVED_PARAMS: ReadonlySet<string> = new Set(['session', 'lifetime']);

/**
 * Splits a username into the user and its parameters; undefined when the parameter part is
 * malformed (an odd number of fields, an empty or non-token field, a key twice, a lifetime
 * that is not a positive duration). Never throws. A username without `-` is the user itself.
 */
export function parseUsername(text: string): ParsedUsername | undefined {
  const dash = text.indexOf('-');
  if (dash === -1) return text === '' ? undefined : { user: text, params: {} };
  const user = text.slice(0, dash);
  if (user === '') return undefined;
  const fields = text.slice(dash + 1).split('-');
  if (fields.length % 2 !== 0) return undefined;
  const params: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < fields.length; i += 2) {
    const key = fields[i]!;
    const value = fields[i + 1]!;
    if (!TOKEN.test(key) || !TOKEN.test(value) || key in params) return undefined;
    params[key] = value;
  }
  if (params['lifetime'] !== undefined && !(lifetimeMs(params) ?? 0)) return undefined;
  return { user, params: { ...params } };
}

/** `alice-session-XYZ` → alice with session key XYZ; undefined when the parameters are malformed. */
export function splitSessionUser(username: string): { user: string; sessionKey: string | undefined; params: SessionParams } | undefined {
  const parsed = parseUsername(username);
  if (!parsed) return undefined;
  return { user: parsed.user, sessionKey: parsed.params['session'], params: parsed.params };
}

/** The username `parseUsername` reads back as (user, params); keys in the order given. */
export function formatUsername(user: string, params: SessionParams): string {
  let out = user;
  for (const [k, v] of Object.entries(params)) out += `-${k}-${v}`;
  return out;
}

/**
 * The key a `sticky` pool hashes for one request. A session is its user's own: under the
 * bare session value, `bob-session-K1` took alice's member of session K1, and `bob-session-alice`
 * the member of alice's traffic without a session (keyed on her name). Written as the username
 * spells it: no configured name holds a "-", so it never equals one. Without a session, the
 * user, else the client's address.
 */
export function stickyKey(user: string | undefined, session: string | undefined, source: string): string {
  if (user === undefined) return session ?? source;
  return session === undefined ? user : formatUsername(user, { session });
}

/** The session's `lifetime` in ms, undefined when absent or not a duration. */
export function lifetimeMs(params: SessionParams | undefined): number | undefined {
  const text = params?.['lifetime'];
  return text === undefined ? undefined : parseDuration(text);
}

/** The tag filters of a session: every parameter but `session` and `lifetime`. */
export function filterParams(params: SessionParams | undefined): [string, string][] {
  if (!params) return [];
  const out: [string, string][] = [];
  for (const k in params) if (!RESERVED_PARAMS.has(k)) out.push([k, params[k]!]);
  return out;
}
