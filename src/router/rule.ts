// One configured rule compiled into matchers. Fields AND, entries within a field OR
// (PRODUCT.md "Rule matching"); the destination condition is domains ∪ cidrs.

import type { Command, RuleConfig } from '../config/types.js';
import { ConfigError } from '../errors.js';
import { parseCidr, type Cidr } from '../config/cidr.js';
import { CidrSetBuilder, type CidrSet } from './cidrs.js';
import { parseDomainEntry, type DomainEntry } from '../config/domains.js';
import { DomainMatcherBuilder, type DomainMatcher } from './domains.js';
import type { ParsedIp } from '../config/ip.js';
import { loadList } from './lists.js';
import { parsePortEntry, type PortRange } from '../config/ports.js';
import { PortSet } from './ports.js';

export interface CompiledRule {
  readonly name: string;
  readonly index: number;
  readonly action: string;
  readonly commands: ReadonlySet<Command> | undefined;
  readonly ports: PortSet | undefined;
  readonly users: ReadonlySet<string> | undefined;
  readonly sources: CidrSet | undefined;
  /** False when the rule names no destination at all: every destination then holds. */
  readonly hasDestination: boolean;
  readonly domains: DomainMatcher | undefined;
  readonly cidrs: CidrSet | undefined;
  /** Resolve a name to test `cidrs` (default true). */
  readonly resolve: boolean;
}

/** The request facts every rule looks at, parsed once per decision. */
export interface Facts {
  readonly cmd: Command;
  readonly port: number;
  readonly user: string | undefined;
  /** Parsed lazily: only rules with `sources` need it. */
  source(): ParsedIp | undefined;
}

/** Everything except the destination: set lookups that never wait. */
export function cheapHolds(r: CompiledRule, f: Facts): boolean {
  if (r.commands !== undefined && !r.commands.has(f.cmd)) return false;
  if (r.ports !== undefined && !r.ports.has(f.port)) return false;
  if (r.users !== undefined && (f.user === undefined || !r.users.has(f.user))) return false;
  if (r.sources !== undefined) {
    const ip = f.source();
    if (ip === undefined || !r.sources.has(ip)) return false;
  }
  return true;
}

/** The error for a list file of the rule that cannot be read: `key` names it, `path` is where it was looked for. */
export type Unreadable = (key: 'domains_file' | 'cidrs_file', path: string, err: unknown) => string;

/**
 * Compiles rule `index` of the config. Inline entries were validated by the config loader;
 * list files are validated here. Every problem is collected before one ConfigError is thrown.
 */
export async function compileRule(r: RuleConfig, index: number, baseDir: string, where: string, unreadable: Unreadable): Promise<CompiledRule> {
  const issues: string[] = [];
  const at = `${where}: rule "${r.name}"`;

  const domains = new DomainMatcherBuilder();
  for (const e of r.domains ?? []) addOrReport(parseDomainEntry(e), (d) => domains.add(d), issues, at);
  if (r.domains_file !== undefined) {
    const list = await loadList<DomainEntry>(baseDir, r.domains_file, parseDomainEntry, issues, (path, err) => unreadable('domains_file', path, err));
    for (const d of list.entries) domains.add(d);
  }

  const cidrs = new CidrSetBuilder();
  for (const e of r.cidrs ?? []) addOrReport(parseCidr(e), (c) => cidrs.add(c), issues, at);
  if (r.cidrs_file !== undefined) {
    const list = await loadList<Cidr>(baseDir, r.cidrs_file, parseCidr, issues, (path, err) => unreadable('cidrs_file', path, err));
    for (const c of list.entries) cidrs.add(c);
  }

  let sources: CidrSet | undefined;
  if (r.sources !== undefined) {
    const b = new CidrSetBuilder();
    for (const e of r.sources) addOrReport(parseCidr(e), (c) => b.add(c), issues, `${at} sources`);
    sources = b.build();
  }

  let ports: PortSet | undefined;
  if (r.ports !== undefined) {
    const ranges: PortRange[] = [];
    for (const e of r.ports) addOrReport(parsePortEntry(e), (p) => ranges.push(p), issues, at);
    ports = new PortSet(ranges);
  }

  if (issues.length > 0) throw new ConfigError(issues);
  const hasDestination =
    r.domains !== undefined || r.domains_file !== undefined || r.cidrs !== undefined || r.cidrs_file !== undefined;
  return {
    name: r.name,
    index,
    action: r.action,
    commands: r.commands === undefined ? undefined : new Set(r.commands),
    ports,
    users: r.users === undefined ? undefined : new Set(r.users),
    sources,
    hasDestination,
    // An empty list (a list file with only comments) matches nothing, as an empty field would.
    domains: domains.size > 0 ? domains.build() : undefined,
    cidrs: cidrs.size > 0 ? cidrs.build() : undefined,
    resolve: r.resolve !== false,
  };
}

function addOrReport<T>(v: T | string, add: (v: T) => void, issues: string[], at: string): void {
  if (typeof v === 'string') issues.push(`${at}: ${v}`);
  else add(v);
}
