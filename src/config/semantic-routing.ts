// Cross-references between upstreams and rules: every `action`, `default`, `via` and pool
// member must name something, `via` chains must not loop, and rule entries must parse.
// Entries are parsed by the very functions that compile them (router, pool members), so
// `check` accepts exactly what start-up accepts.

import { parseTarget, withoutCredentials } from './net.js';
import { EXPECTED_URL, looksLikeUrl, MemberHostError, parseMemberUrl, redact } from './member-url.js';
import { parseCidr } from './cidr.js';
import { parseDomainEntry } from './domains.js';
import { parsePortEntry } from './ports.js';
import { problem, type ConfigPath, type Issue } from './positions.js';
import { entries, list, obj, str, type Obj } from './raw.js';

const BUILTIN_ACTIONS = ['direct', 'block'] as const;
const PORT_RANGE = /^\d+-\d+$/;

export function checkRouting(root: Obj, out: Issue[]): void {
  const upstreams = new Map(entries(root['upstreams']).map(([name, u]) => [name, obj(u)]));
  checkUpstreams(upstreams, out);
  checkCycles(upstreams, out);
  const names = [...BUILTIN_ACTIONS, ...upstreams.keys()];
  const users = new Set(list(obj(root['auth'])?.['users']).map((u) => str(obj(u)?.['username'])));
  checkRules(root, names, root['auth'] === undefined ? undefined : users, out);
  checkAction(root['default'], ['default'], names, out);
}

function checkAction(value: unknown, path: ConfigPath, names: readonly string[], out: Issue[]): void {
  const name = str(value);
  if (name === undefined || names.includes(name)) return;
  out.push(problem(path, `"${name}" names no upstream or pool (expected ${names.map((n) => `"${n}"`).join(', ')})`));
}

function checkUpstreams(upstreams: ReadonlyMap<string, Obj | undefined>, out: Issue[]): void {
  for (const [name, u] of upstreams) {
    const at = (...rest: (string | number)[]): ConfigPath => ['upstreams', name, ...rest];
    if ((BUILTIN_ACTIONS as readonly string[]).includes(name)) {
      out.push({ ...problem(at(), `"${name}" is a built-in action and cannot name an upstream`), atKey: true });
    }
    if (!u) continue;
    const via = viaOf(u);
    if (via !== undefined && !upstreams.has(via)) {
      out.push(problem(at('via'), `"${via}" names no upstream (defined: ${[...upstreams.keys()].join(', ')})`));
    }
    if (u['type'] === 'pool') checkPool(u, at, upstreams, out);
  }
}

function checkPool(
  pool: Obj,
  at: (...rest: (string | number)[]) => ConfigPath,
  upstreams: ReadonlyMap<string, Obj | undefined>,
  out: Issue[],
): void {
  const members = list(pool['members']);
  if (members.length === 0 && pool['members_file'] === undefined) {
    out.push(problem(at(), 'a pool needs "members" or "members_file"'));
  }
  members.forEach((m, i) => checkMember(m, at('members', i), upstreams, out));
  const target = str(obj(pool['health_check'])?.['target']);
  if (target !== undefined) {
    try {
      parseTarget(target);
    } catch (err) {
      out.push(problem(at('health_check', 'target'), (err as Error).message));
    }
  }
}

/** One pool member: a proxy URL, `{url, weight, tags}` (its url a proxy URL), or an upstream's name. */
function checkMember(m: unknown, path: ConfigPath, upstreams: ReadonlyMap<string, Obj | undefined>, out: Issue[]): void {
  const url = str(obj(m)?.['url']);
  const member = str(m) ?? url;
  if (member === undefined) return;
  const where = url === undefined ? path : [...path, 'url'];
  if (looksLikeUrl(member)) {
    try {
      parseMemberUrl(member);
    } catch (err) {
      out.push(problem(where, err instanceof MemberHostError ? err.message : `${(err as Error).message}: ${EXPECTED_URL}`));
    }
    return;
  }
  // `user:pass@host:port` or `host:port:user:pass` without its scheme: only the host is shown
  // (withoutCredentials reads a list line whose password holds "@" as the list line it is).
  const shown = member.includes('@') ? withoutCredentials(member) : redact(member);
  if (url !== undefined || !upstreams.has(member)) {
    const what = url !== undefined ? `"${shown}" is not a proxy URL` : `"${shown}" names no upstream and is not a proxy URL`;
    const hint = member.includes(':') ? ' (proxy-list lines without a scheme belong in members_file)' : '';
    out.push(problem(where, `${what}${hint}: ${EXPECTED_URL}`));
  } else if (upstreams.get(member)?.['type'] === 'pool') {
    out.push(problem(path, `"${member}" is a pool; pool members must be proxy upstreams or URLs`));
  }
}

/** The upstream `u` is reached through. A pool has no `via` (the schema reports the key): no name to look up as well. */
function viaOf(u: Obj | undefined): string | undefined {
  return u?.['type'] === 'pool' ? undefined : str(u?.['via']);
}

/** A `via` chain (or a pool's member's chain) that comes back to where it started. */
function checkCycles(upstreams: ReadonlyMap<string, Obj | undefined>, out: Issue[]): void {
  const edges = (name: string): [string, ConfigPath][] => {
    const u = upstreams.get(name);
    const via = viaOf(u);
    if (via !== undefined) return upstreams.has(via) ? [[via, ['upstreams', name, 'via']]] : [];
    if (u?.['type'] !== 'pool') return [];
    // A pool named as a member is reported as such (checkMember): no cycle through it as well.
    return list(u['members']).flatMap((m, i): [string, ConfigPath][] => {
      const member = str(m);
      return member !== undefined && upstreams.has(member) && upstreams.get(member)?.['type'] !== 'pool' ? [[member, ['upstreams', name, 'members', i]]] : [];
    });
  };
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, 'open');
    stack.push(name);
    for (const [next, path] of edges(name)) {
      if (state.get(next) === 'open') {
        const loop = [...stack.slice(stack.indexOf(next)), next].join(' → ');
        out.push(problem(path, `via cycle: ${loop}`));
      } else if (!state.has(next)) {
        visit(next);
      }
    }
    stack.pop();
    state.set(name, 'done');
  };
  for (const name of upstreams.keys()) if (!state.has(name)) visit(name);
}

function checkRules(root: Obj, names: readonly string[], users: ReadonlySet<string | undefined> | undefined, out: Issue[]): void {
  const seen = new Set<string>();
  list(root['rules']).forEach((r, i) => {
    const rule = obj(r);
    if (!rule) return;
    const at = (...rest: (string | number)[]): ConfigPath => ['rules', i, ...rest];
    const name = str(rule['name']);
    if (name !== undefined && seen.has(name)) out.push(problem(at('name'), `rule name "${name}" is used twice`));
    // The access log, the rule labels of /metrics, /api/stats and `route` call the fallback so.
    if (name === 'default') out.push(problem(at('name'), 'rule name "default" is reserved: it names the `default` action where no rule matched'));
    if (name !== undefined) seen.add(name);
    checkAction(rule['action'], at('action'), names, out);
    checkEntries(rule['domains'], at('domains'), parseDomainEntry, out);
    checkEntries(rule['cidrs'], at('cidrs'), parseCidr, out);
    checkEntries(rule['sources'], at('sources'), parseCidr, out);
    // The schema checks numbers and the "lo-hi" shape; ranges still need their bounds and order.
    checkEntries(rule['ports'], at('ports'), (t) => (PORT_RANGE.test(t) ? parsePortEntry(t) : undefined), out);
    list(rule['users']).forEach((u, j) => {
      const user = str(u);
      if (user === undefined || users?.has(user)) return;
      const why = users ? 'is not in auth.users' : 'can never match: there is no auth section, so requests carry no user';
      out.push(problem(at('users', j), `user "${user}" ${why}`));
    });
  });
}

/** Runs a compile-time parser over a list's string entries; its message becomes the issue. */
function checkEntries(value: unknown, path: ConfigPath, parse: (text: string) => unknown, out: Issue[]): void {
  list(value).forEach((entry, j) => {
    const text = str(entry);
    const result = text === undefined ? undefined : parse(text);
    if (typeof result === 'string') out.push(problem([...path, j], result));
  });
}
