// The compiled rule list: first match wins (PRODUCT.md "Rule matching"). A compiled router is
// immutable; a reload compiles a new one and the gateway swaps one reference.

import type { Command, Config } from '../config/types.js';
import type { DnsResolver, ResolvedAddress } from '../dns/types.js';
import { ConfigError } from '../errors.js';
import { cannotRead } from '../config/file-places.js';
import { normalizeName } from '../config/domains.js';
import { loopbackOfUnspecified, parseIp, type ParsedIp } from '../config/ip.js';
import { cheapHolds, compileRule, type CompiledRule, type Facts } from './rule.js';
import type { Decision, RouteRequest, Router } from './types.js';

export interface RouterDeps {
  dns: Pick<DnsResolver, 'lookup'>;
}

/**
 * Compiles `config.rules` (reading every `domains_file` / `cidrs_file` relative to
 * `config.base_dir`). Throws ConfigError listing every problem found, `FILE:LINE:COL: message`
 * for list files (a file that cannot be read: at the config line naming it).
 */
export async function compileRouter(config: Config, deps: RouterDeps): Promise<Router> {
  const settled = await Promise.allSettled(
    config.rules.map((r, i) => compileRule(r, i, config.base_dir, config.source, (key, path, err) => cannotRead(config, ['rules', i, key], path, err))),
  );
  const issues: string[] = [];
  const rules: CompiledRule[] = [];
  for (const s of settled) {
    if (s.status === 'fulfilled') rules.push(s.value);
    else if (s.reason instanceof ConfigError) issues.push(...s.reason.issues);
    else throw s.reason;
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return Object.freeze(new CompiledRouter(rules, config.default, deps.dns));
}

/** What resolving the destination gave, kept for the rest of one decision. */
interface Lookup {
  addresses: ResolvedAddress[];
  ips: ParsedIp[];
  /** Why the name could not be resolved (no addresses then): the request's answer, not asked again. */
  failure?: unknown;
}

class RequestFacts implements Facts {
  readonly cmd: RouteRequest['cmd'];
  readonly port: number;
  readonly user: string | undefined;
  readonly #sourceText: string;
  #source: ParsedIp | undefined | null = null; // null: not parsed yet

  constructor(req: RouteRequest) {
    this.cmd = req.cmd;
    this.port = req.dest.port;
    this.user = req.user;
    this.#sourceText = req.source;
  }

  source(): ParsedIp | undefined {
    if (this.#source === null) this.#source = parseIp(this.#sourceText);
    return this.#source;
  }
}

class CompiledRouter implements Router {
  readonly #rules: readonly CompiledRule[];
  readonly #default: string;
  readonly #dns: Pick<DnsResolver, 'lookup'>;

  constructor(rules: readonly CompiledRule[], defaultAction: string, dns: Pick<DnsResolver, 'lookup'>) {
    this.#rules = Object.freeze(rules);
    this.#default = defaultAction;
    this.#dns = dns;
  }

  /**
   * Synchronous unless a rule needs the destination's addresses: most requests (IP literals,
   * names a domain rule or a source/user rule settles) cost no promise and no await.
   */
  decide(req: RouteRequest): Decision | Promise<Decision> {
    const facts = new RequestFacts(req);
    const ip = parseIp(unbracketed(req.dest.host));
    const reached = ip === undefined ? undefined : reachedLoopback(ip, req.cmd);
    const name = ip === undefined ? normalizeName(req.dest.host) : '';
    const rules = this.#rules;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i]!;
      if (!cheapHolds(r, facts)) continue;
      if (!r.hasDestination) return decision(r, undefined);
      if (ip !== undefined) {
        // Domains match names only; an IP literal meets the CIDRs directly.
        if (r.cidrs !== undefined && (r.cidrs.has(ip) || (reached !== undefined && r.cidrs.has(reached)))) return decision(r, undefined);
        continue;
      }
      if (r.domains?.matches(name)) return decision(r, undefined);
      if (r.cidrs !== undefined && r.resolve) return this.#decideResolved(i, facts, name);
    }
    return { rule: 'default', ruleIndex: -1, action: this.#default };
  }

  /** From rule `from` on, with the name looked up once (a failure is not retried for this request). */
  async #decideResolved(from: number, facts: RequestFacts, name: string): Promise<Decision> {
    const lookup = await this.#resolve(name, facts.cmd);
    const rules = this.#rules;
    for (let i = from; i < rules.length; i++) {
      const r = rules[i]!;
      if (!cheapHolds(r, facts)) continue;
      if (!r.hasDestination) return decision(r, lookup);
      if (r.domains?.matches(name)) return decision(r, lookup);
      if (r.cidrs !== undefined && r.resolve && lookup.ips.some((a) => r.cidrs!.has(a))) return decision(r, lookup);
    }
    return withLookup({ rule: 'default', ruleIndex: -1, action: this.#default }, lookup);
  }

  /**
   * A failed lookup means "no CIDR match" for the rules; the connection reports it if it
   * matters (a direct dial, a name resolved for an upstream), without asking again.
   */
  async #resolve(host: string, cmd: Command): Promise<Lookup> {
    try {
      const addresses = await this.#dns.lookup(host);
      const ips: ParsedIp[] = [];
      for (const a of addresses) {
        const p = parseIp(a.address);
        if (p === undefined) continue;
        ips.push(p);
        // A name answered with 0.0.0.0 (as sinkholing resolvers answer) reaches loopback too.
        const reached = reachedLoopback(p, cmd);
        if (reached !== undefined) ips.push(reached);
      }
      return { addresses, ips };
    } catch (err) {
      return { addresses: [], ips: [], failure: err };
    }
  }
}

function decision(r: CompiledRule, lookup: Lookup | undefined): Decision {
  const d = withLookup({ rule: r.name, ruleIndex: r.index, action: r.action }, lookup);
  if (r.cidrs) d.cidrs = r.cidrs;
  return d;
}

/** `d` with the answer the decision looked up (addresses, or the failure), for the connect to use. */
function withLookup(d: Decision, lookup: Lookup | undefined): Decision {
  if (lookup?.failure !== undefined) d.unresolved = lookup.failure;
  else if (lookup) d.resolved = lookup.addresses;
  return d;
}

/**
 * The loopback address a connection or datagram to `ip` reaches, when `ip` is 0.0.0.0 or `::`
 * (the kernel delivers them to this host): rules for loopback networks hold for them too, or a
 * block on 127.0.0.0/8 would let 0.0.0.0 through to every service on the gateway's host. A
 * BIND's address names the peer expected to connect (0.0.0.0: any), and nothing is dialed.
 */
function reachedLoopback(ip: ParsedIp, cmd: Command): ParsedIp | undefined {
  return cmd === 'bind' ? undefined : loopbackOfUnspecified(ip);
}

/** `[::1]` sent as a name is the address ::1: the DNS layer connects it without a query. */
function unbracketed(host: string): string {
  return host.charCodeAt(0) === 91 /* [ */ && host.charCodeAt(host.length - 1) === 93 /* ] */ ? host.slice(1, -1) : host;
}
