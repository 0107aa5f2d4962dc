// The username and password an upstream gets for one request. Pool members may carry
// templates ({session}, {user}, {NAME}) that are filled from the request's session
// parameters; every proxy outbound (socks5, socks4, http) asks here, so all fill alike.
// Providers behind one endpoint read their own parameters from the username
// (`brd-customer-c1-zone-z1-session-{session}-country-{country}`).

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
