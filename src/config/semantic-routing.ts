// Cross-references between upstreams and rules: every `action`, `default`, `via` and pool
// member must name something, `via` chains must not loop, and rule entries must parse.

import { parseCidr, parseHostPort, parseSocks5Url } from './net.js';
import { problem, type ConfigPath, type Issue } from './positions.js';
import { entries, list, obj, str, type Obj } from './raw.js';

const BUILTIN_ACTIONS = ['direct', 'block'] as const;
const DOMAIN_PREFIXES = ['full', 'keyword', 'regexp'] as const;

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
    const via = str(u['via']);
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
  members.forEach((m, i) => {
    const member = str(m);
    if (member === undefined) return;
    if (member.includes('://')) {
      if (!parseSocks5Url(member)) out.push(problem(at('members', i), `"${redactUrl(member)}" is not a socks5://[user:pass@]host:port URL`));
      return;
    }
    const target = upstreams.get(member);
    if (!upstreams.has(member)) {
      out.push(problem(at('members', i), `"${member}" names no upstream and is not a socks5:// URL`));
    } else if (target?.['type'] === 'pool') {
      out.push(problem(at('members', i), `"${member}" is a pool; pool members must be socks5 upstreams or URLs`));
    }
  });
  const target = str(obj(pool['health_check'])?.['target']);
  if (target !== undefined && parseHostPort(target)?.port === undefined) {
    out.push(problem(at('health_check', 'target'), `"${target}" is not host:port`));
  }
}

/** Never echo a password from a URL back into a message (it may end up in logs). */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
}

/** A `via` chain (or a pool's member's chain) that comes back to where it started. */
function checkCycles(upstreams: ReadonlyMap<string, Obj | undefined>, out: Issue[]): void {
  const edges = (name: string): [string, ConfigPath][] => {
    const u = upstreams.get(name);
    const via = str(u?.['via']);
    if (via !== undefined) return upstreams.has(via) ? [[via, ['upstreams', name, 'via']]] : [];
    if (u?.['type'] !== 'pool') return [];
    return list(u['members']).flatMap((m, i): [string, ConfigPath][] => {
      const member = str(m);
      return member !== undefined && upstreams.has(member) ? [[member, ['upstreams', name, 'members', i]]] : [];
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
    if (name !== undefined) seen.add(name);
    checkAction(rule['action'], at('action'), names, out);
    list(rule['domains']).forEach((d, j) => checkDomain(str(d), at('domains', j), out));
    for (const field of ['cidrs', 'sources'] as const) {
      list(rule[field]).forEach((c, j) => {
        const text = str(c);
        if (text !== undefined && !parseCidr(text)) out.push(problem(at(field, j), `"${text}" is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address`));
      });
    }
    list(rule['ports']).forEach((p, j) => checkPortRange(str(p), at('ports', j), out));
    list(rule['users']).forEach((u, j) => {
      const user = str(u);
      if (user === undefined || users?.has(user)) return;
      const why = users ? 'is not in auth.users' : 'can never match: there is no auth section, so requests carry no user';
      out.push(problem(at('users', j), `user "${user}" ${why}`));
    });
  });
}

function checkDomain(entry: string | undefined, path: ConfigPath, out: Issue[]): void {
  if (entry === undefined) return;
  const colon = entry.indexOf(':');
  if (colon === -1) return;
  const prefix = entry.slice(0, colon);
  const value = entry.slice(colon + 1);
  if (!(DOMAIN_PREFIXES as readonly string[]).includes(prefix)) {
    out.push(problem(path, `"${entry}": unknown matcher "${prefix}:" (expected a domain, full:, keyword: or regexp:)`));
  } else if (value === '') {
    out.push(problem(path, `"${entry}": nothing after "${prefix}:"`));
  } else if (prefix === 'regexp') {
    try {
      new RegExp(value, 'i');
    } catch (err) {
      out.push(problem(path, `invalid regular expression: ${(err as Error).message}`));
    }
  }
}

function checkPortRange(text: string | undefined, path: ConfigPath, out: Issue[]): void {
  const m = text === undefined ? null : /^(\d+)-(\d+)$/.exec(text);
  if (!m) return; // plain numbers and shapes are the schema's job
  const [lo, hi] = [Number(m[1]), Number(m[2])];
  if (lo < 1 || hi > 65535) out.push(problem(path, `"${text}": ports are 1-65535`));
  else if (lo > hi) out.push(problem(path, `"${text}": range start ${lo} is above its end ${hi}`));
}
