// The routing decision for one hypothetical request, as `socksgate route` prints it and
// GET /api/route answers it: the rule, its action and, for a pool, the member it would pick.

import type { Command, Config, ProxyUpstreamConfig } from './config/types.js';
import { isIP } from 'node:net';
import type { EgressGuard } from './outbound/egress.js';
import type { Destination, Outbound } from './outbound/types.js';
import { isPoolOutbound } from './outbound/stats.js';
import type { Router } from './router/types.js';
import { splitSessionUser, stickyKey } from './protocol/username.js';
import { isDestinationHost } from './config/domains.js';
import { peerText, unmapped } from './protocol/address.js';

export interface RouteQuery {
  host: string;
  port: number;
  /** As the client would send it: session parameters allowed (`alice-session-42`). */
  user?: string | undefined;
  /** The client's IP; 127.0.0.1 when absent. */
  source?: string | undefined;
  command?: Command | undefined;
}

export interface RouteExplanation {
  rule: string;
  action: string;
  /** Index in `rules`, -1 for the default. */
  index: number;
  /**
   * For a pool, or an upstream reached `via` a pool: the member picked now (a URL without its
   * password), or null when none is usable.
   */
  member?: string | null;
  /**
   * With `member` null (and the command carried): why, as the request's access-log line says,
   * and the reply code it gets (none for UDP: its datagrams are dropped, the association stands).
   */
  refused?: { rep?: number; reason: string };
  /** Addresses the name resolved to, when a rule needed them. */
  resolved?: string[];
  /**
   * `denied` when the action is `direct` and every address it would dial (an IP literal, or
   * the rules' answer for a name) is in `egress.deny`: the request gets 0x02 (HTTP 403).
   */
  egress?: 'denied';
  /**
   * The command (udp, bind) its action cannot carry: a request's datagrams are dropped and
   * counted as `unsupported`, a BIND gets 0x07.
   */
  unsupported?: 'udp' | 'bind';
}

/** The running configuration and what was built from it: all a routing decision reads. */
export interface RouteParts {
  readonly config: Config;
  readonly router: Router;
  readonly outbounds: ReadonlyMap<string, Outbound>;
  /** The compiled `egress.deny`; without it the guard is not consulted. */
  readonly egress?: EgressGuard;
}

/**
 * The client address as the gateway has it for a connection from `ip`: Node's text of it
 * (RFC 5952), an IPv4-mapped one as the IPv4 address (server/client.ts). A sticky pool keys a
 * session without a user or session parameter on that text.
 */
function clientText(ip: string): string {
  const zone = ip.indexOf('%');
  return zone === -1 ? unmapped(peerText(ip)) : unmapped(peerText(ip.slice(0, zone))) + ip.slice(zone);
}

/** `[::1]` as people type it is the address ::1. */
function unbracketed(host: string): string {
  return host.replace(/^\[(.*)\]$/, '$1');
}

/**
 * Why no request for `host` gets a decision, or undefined: a name traffic refuses before any
 * rule (SOCKS 0x04, HTTP 400) must not be shown a rule it would never reach.
 */
export function refusedHost(host: string): string | undefined {
  if (isDestinationHost(unbracketed(host))) return undefined;
  return `${JSON.stringify(host.slice(0, 100))} is not an IP address or a hostname: a request for it is refused before any rule (SOCKS 0x04, HTTP 400)`;
}

/**
 * Why no request carries `user` (a well-formed username, parameters allowed), or undefined:
 * without `auth` no request has a user, and a name not in auth.users cannot log in.
 */
export function refusedUser(config: Config, user: string): string | undefined {
  const name = splitSessionUser(user)?.user ?? user;
  if (config.auth === undefined) return `${JSON.stringify(name)}: the configuration has no auth section, so no request carries a user`;
  if (!config.auth.users.some((u) => u.username === name)) return `${JSON.stringify(name)} is not in auth.users: its login is refused before any rule`;
  return undefined;
}

/**
 * The pool whose member a request's access-log line names: the action's own, else the first
 * pool on the action's `via` chain (the hop nearest the action writes the member last), with
 * the upstream it dials for. Undefined when there is none, or (`carried` false) the action
 * cannot carry the command: it is refused before any hop is dialed.
 */
function memberPool(config: Config, action: string, carried: boolean): { pool: string; hopTo?: Destination } | undefined {
  const first = config.upstreams[action];
  if (first?.type === 'pool') return { pool: action };
  if (!first || !carried) return undefined;
  // Bounded by the number of upstreams: a `via` cycle is a config error, but a walk never trusts that.
  let at: ProxyUpstreamConfig = first;
  for (let hops = 0; hops < Object.keys(config.upstreams).length; hops++) {
    const next = at.via === undefined ? undefined : config.upstreams[at.via];
    if (!next) return undefined;
    if (next.type === 'pool') return { pool: at.via!, hopTo: { host: at.host, port: at.port } };
    at = next;
  }
  return undefined;
}

/** What a request would get from `router` (picking from `outbounds` without side effects). */
export async function explainRoute(
  parts: RouteParts,
  q: RouteQuery,
): Promise<RouteExplanation> {
  const split = q.user === undefined ? undefined : splitSessionUser(q.user);
  // Callers refuse a malformed or unknown username or host first (exit 2, HTTP 400); traffic would be refused.
  if (q.user !== undefined && !split) throw new RangeError(`user "${q.user}" is not USER(-KEY-VALUE)*`);
  const refused = refusedHost(q.host) ?? (q.user === undefined ? undefined : refusedUser(parts.config, q.user));
  if (refused !== undefined) throw new RangeError(refused);
  const user = split?.user;
  const sessionKey = split?.sessionKey;
  const source = clientText(q.source ?? '127.0.0.1');
  const cmd = q.command ?? 'connect';
  const dest = { host: unbracketed(q.host), port: q.port };
  const decision = await parts.router.decide({ dest, cmd, user, source });
  const out: RouteExplanation = { rule: decision.rule, action: decision.action, index: decision.ruleIndex };
  // As the pipeline finds it: an outbound carries UDP or BIND only with the capability.
  const action = parts.outbounds.get(decision.action);
  const carried = cmd === 'connect' || !action || (cmd === 'udp' ? !!action.openUdp : !!action.bind);
  const named = memberPool(parts.config, decision.action, carried);
  if (named) {
    const pool = parts.outbounds.get(named.pool);
    // The same key a request would use (stickyKey): the user's session, else the user, else the
    // source; UDP and BIND only through members that can carry them, and an IPv6 address not
    // through a socks4 member, as the pool picks for them. As a hop, the pool is asked for a
    // CONNECT to the upstream behind it.
    const key = stickyKey(user, sessionKey, source);
    const poolOut = pool && isPoolOutbound(pool) ? pool : undefined;
    const asHop = named.hopTo !== undefined;
    const command = asHop ? 'connect' : cmd;
    const picked = poolOut?.pick(key, split?.params, command, named.hopTo ?? dest, asHop);
    out.member = picked ?? null;
    if (picked === undefined && poolOut && carried) {
      const err = poolOut.refusal(split?.params, command, asHop);
      out.refused = cmd === 'udp' ? { reason: err.message } : { rep: err.rep, reason: err.message };
    }
  }
  if (!carried) out.unsupported = cmd;
  if (decision.resolved) out.resolved = decision.resolved.map((a) => a.address);
  // What `direct` checks before it dials (outbound/direct.ts), CONNECT and UDP alike; BIND dials nothing.
  // A name no rule resolved is looked up only at the dial: its addresses are not known here.
  const dialed = decision.resolved?.map((a) => a.address) ?? (isIP(dest.host) !== 0 ? [dest.host] : []);
  const guard = parts.egress;
  if (decision.action === 'direct' && cmd !== 'bind' && guard && dialed.length > 0 && dialed.every((a) => guard.denies(a, decision.cidrs))) {
    out.egress = 'denied';
  }
  return out;
}
