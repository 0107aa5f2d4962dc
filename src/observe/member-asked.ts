// The member an API path names. The name is the one /api/upstreams lists, but an operator may
// well paste the URL from the config instead; for a username without a password that name is
// a fingerprint (member-url.ts), which nobody can write from the config alone.

import { looksLikeUrl, parseMemberUrl, redact } from '../config/member-url.js';
import { HttpError } from './http.js';
import type { PoolOutbound } from '../outbound/stats.js';

/**
 * The name of the member of `pool` that `asked` names: its name, or a URL as the config wrote
 * it whose name (computed as the config does) is that of exactly one member. Members apart
 * only in their password (`name#2`…) are not told apart by it: those are asked by name.
 */
export function memberAsked(pool: PoolOutbound, asked: string): string {
  const names = pool.stats().map((m) => m.name);
  if (names.includes(asked)) return asked;
  const display = looksLikeUrl(asked) ? displayOf(asked) : undefined;
  if (display !== undefined && names.includes(display) && !names.includes(`${display}#2`)) return display;
  // Never the text as asked: it may carry a password (a URL copied from the config).
  throw new HttpError(404, `pool "${pool.name}" has no member "${redact(asked)}": members are addressed by their name as /api/upstreams lists it`);
}

function displayOf(url: string): string | undefined {
  try {
    return parseMemberUrl(url).display;
  } catch {
    return undefined;
  }
}
