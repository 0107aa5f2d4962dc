// A pool's tag-filter views: the members a session's `KEY=VALUE` filters leave, each with a
// strategy built over them, cached per set of filters in a cache bounded against clients that
// choose new filters on every request.

import type { PoolStrategy } from '../config/types.js';
import { filterParams, RESERVED_PARAMS, type SessionParams } from '../protocol/username.js';
import type { Member } from './pool-member.js';
import { createStrategy, type Strategy } from './strategies.js';

/** Tag-filter views kept per pool; clients choose the filters, so the cache is bounded. */
const MAX_VIEWS = 256;
/**
 * Members held by the cached views, in all: a sticky view builds up to about 2 KiB a member
 * (rendezvous halves), so this bounds a pool's views at about 16 MiB however large it is.
 */
const MAX_VIEW_MEMBERS = 8_192;

/**
 * The cache key of a session's tag filters: sorted `KEY=VALUE`s joined by commas, "" for none,
 * values in lower case (they match tags in any case).
 * Built on every pick, so no arrays unless there are two filters or more (keys and values are
 * tokens: neither `=` nor `,` occurs in them).
 */
function filterSignature(params: SessionParams | undefined, noFilter: ReadonlySet<string>): string {
  if (params === undefined) return '';
  let one = '';
  let many: string[] | undefined;
  for (const k in params) {
    if (RESERVED_PARAMS.has(k) || noFilter.has(k)) continue;
    const kv = `${k}=${params[k]!.toLowerCase()}`;
    if (one === '') one = kv;
    else (many ??= [one]).push(kv);
  }
  return many ? many.sort().join(',') : one;
}

/** The members one set of tag filters leave, with a strategy built over them. */
export interface View {
  readonly members: readonly Member[];
  readonly strategy: Strategy<Member>;
}

export interface PoolViews {
  /** Every member: no filter, or a pool asked as a hop. */
  readonly all: View;
  /**
   * The members the session's tag filters leave: tagged with every KEY=VALUE, or filling KEY
   * into their username (the provider behind them chooses). Null when none is left. `turns`:
   * the pool's picks so far, where a new view's rotation starts.
   */
  viewFor(params: SessionParams | undefined, turns: number): View | null;
}

/** The views over `members`, each choosing by `strategy`; `turns` is where the unfiltered rotation starts. */
export function createViews(members: readonly Member[], strategy: PoolStrategy, turns: number): PoolViews {
  const all: View = { members, strategy: createStrategy(strategy, members, turns) };
  const views = new Map<string, View | null>();
  let viewMembers = 0;
  /** Parameters every member fills into its username: they leave every member, so they filter nothing. */
  const noFilter = new Set(members.length === 0 ? [] : [...members[0]!.placeholders].filter((k) => members.every((m) => m.placeholders.has(k))));

  function viewFor(params: SessionParams | undefined, turns: number): View | null {
    const signature = filterSignature(params, noFilter);
    if (signature === '') return all;
    const known = views.get(signature);
    if (known !== undefined) return known;
    const filters = filterParams(params);
    // Values in any case: `country-DE` is the member tagged `country=de` (templates get the client's spelling).
    // Own tags only: the key is the client's, and `constructor` or `toString` found Object's
    // own members on a plain object, whose call failed the request with 0x01.
    const left = members.filter((m) => filters.every(([k, v]) => (Object.hasOwn(m.tags, k) && m.tags[k]!.toLowerCase() === v.toLowerCase()) || m.placeholders.has(k)));
    // A new view's rotation starts where the pool's is, not at its first member.
    const view = left.length === 0 ? null : { members: left, strategy: createStrategy(strategy, left, turns) };
    if (views.size >= MAX_VIEWS || viewMembers + left.length > MAX_VIEW_MEMBERS) {
      views.clear();
      viewMembers = 0;
    }
    views.set(signature, view);
    viewMembers += left.length;
    return view;
  }
  return { all, viewFor };
}
