// The one resolver every consumer goes through: IP literals and `hosts`
// answer at once; names are served from the cache, or by one query in flight
// however many requests wait on it.

import { isIP } from 'node:net';
import type { Logger } from 'pino';
import { ConfigError, NameNotResolvedError } from '../errors.js';
import type { DnsConfig } from '../config/types.js';
import { serverBackend, systemBackend, type Backend } from './backends.js';
import { asciiName, deadHostsName, endsInNumber } from '../config/domains.js';
import { peerText } from '../protocol/address.js';
import { clampTtl, DnsCache } from './cache.js';
import type { DnsResolver, DnsStats, ResolvedAddress } from './types.js';

export interface ResolverOptions {
  log?: Logger;
  /** The resolver this one replaces (a reload that changed `dns`): its counters go on, never back to 0. */
  replaces?: DnsResolver;
}

/** Each resolver's live counters, shared with the resolver that replaces it. */
const COUNTERS = new WeakMap<DnsResolver, DnsStats>();

/** Lower case, one trailing dot dropped: `Example.COM.` and `example.com` are one cache entry. */
export function normalizeName(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** `host` as an address when it is an IPv4/IPv6 literal (brackets allowed), else undefined. */
export function literalAddress(host: string): ResolvedAddress | undefined {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = isIP(bare);
  return family === 4 || family === 6 ? { address: bare, family } : undefined;
}

/**
 * A `dns.hosts` value as answers give addresses: IPv6 in RFC 5952 text (`0:0:0:0:0:0:0:1` →
 * `::1`), as Node names a datagram's source, so a UDP answer from it is known for the
 * destination it was sent to. A zone (`%eth0`) is kept as written.
 */
function hostsAddress(value: string): ResolvedAddress | undefined {
  const addr = literalAddress(value);
  return addr?.family === 6 ? { address: peerText(addr.address), family: 6 } : addr;
}

function compileHosts(hosts: Record<string, string>): Map<string, readonly ResolvedAddress[]> {
  const out = new Map<string, readonly ResolvedAddress[]>();
  const bad: string[] = [];
  for (const [name, value] of Object.entries(hosts)) {
    const addr = hostsAddress(value);
    // A name written in Unicode is looked up by the A-label (xn--) clients send.
    const key = asciiName(name);
    const dead = deadHostsName(name);
    if (dead !== undefined || key === undefined) bad.push(`dns.hosts.${name}: ${dead ?? 'not a hostname'}`);
    else if (addr) out.set(key, Object.freeze([Object.freeze(addr)]));
    else bad.push(`dns.hosts.${name}: "${value}" is not an IP address`);
  }
  if (bad.length > 0) throw new ConfigError(bad);
  return out;
}

/** The preferred family first, each family in answer order. */
function ordered(addresses: readonly ResolvedAddress[], prefer: 4 | 6): readonly ResolvedAddress[] {
  const first = addresses.filter((a) => a.family === prefer);
  const rest = addresses.filter((a) => a.family !== prefer);
  return Object.freeze([...first, ...rest].map((a) => Object.freeze({ address: a.address, family: a.family })));
}

/** What a request's routing decision learnt of its destination's name, when it had to look. */
export interface RoutedName {
  /** The addresses the rules resolved the name to. */
  readonly resolved?: ResolvedAddress[] | undefined;
  /** Why the rules' lookup failed. */
  readonly unresolved?: unknown;
}

/**
 * `host`'s addresses, one lookup per request: the ones the routing decision found, else its
 * failed lookup as the answer (not asked again), else a lookup now.
 */
export function addressesOf(dns: DnsResolver, host: string, routed: RoutedName): Promise<ResolvedAddress[]> {
  if (routed.resolved !== undefined) return Promise.resolve(routed.resolved);
  return routed.unresolved !== undefined ? Promise.reject(routed.unresolved) : dns.lookup(host);
}

export function createResolver(cfg: DnsConfig, opts: ResolverOptions = {}): DnsResolver {
  const counters: DnsStats = (opts.replaces && COUNTERS.get(opts.replaces)) ?? { hits: 0, misses: 0, negativeHits: 0, evictions: 0, inflightWaits: 0, queries: 0 };
  const cache = new DnsCache(cfg.cache_size, counters);
  const hosts = compileHosts(cfg.hosts);
  const backend: Backend = cfg.servers?.length ? serverBackend(cfg, cfg.servers) : systemBackend(cfg);
  const prefer = cfg.prefer === 'ipv6' ? 6 : 4;
  const inflight = new Map<string, Promise<readonly ResolvedAddress[]>>();
  const log = opts.log;

  async function query(name: string): Promise<readonly ResolvedAddress[]> {
    let answer;
    try {
      answer = await backend.query(name, (questions) => (counters.queries += questions));
    } catch (err) {
      // Transient (timeout, SERVFAIL, refused): not cached, the next request asks again.
      const e = err instanceof NameNotResolvedError ? err : new NameNotResolvedError(name, 'lookup failed', { cause: err });
      log?.warn({ host: name, err: e.message }, 'dns lookup failed');
      throw e;
    }
    if (answer.kind === 'negative') {
      cache.set(name, answer, cfg.negative_ttl);
      log?.debug({ host: name, reason: answer.reason }, 'dns name not found');
      throw new NameNotResolvedError(name, answer.reason);
    }
    const addresses = ordered(answer.addresses, prefer);
    // A half answer (one family timed out) is kept no longer than a negative one, then asked again.
    const ttl = clampTtl(answer.ttl, cfg);
    cache.set(name, { kind: 'positive', addresses }, answer.partial ? Math.min(ttl, cfg.negative_ttl) : ttl);
    return addresses;
  }

  function lookup(host: string): Promise<ResolvedAddress[]> {
    const literal = literalAddress(host);
    if (literal) return Promise.resolve([literal]);
    const name = normalizeName(host);
    if (name === '') return Promise.reject(new NameNotResolvedError(host, 'empty name'));
    const fixed = hosts.get(name);
    if (fixed) return Promise.resolve([...fixed]);
    // Read as IPv4 by getaddrinfo: refused here too, for upstream hosts from the config.
    if (endsInNumber(name)) return Promise.reject(new NameNotResolvedError(host, 'numeric name is not a hostname'));
    // RFC 6761 §6.4: never asked. A server that rewrites NXDOMAIN would answer it, and the
    // system resolver would send it to the machine's name server.
    if (name === 'invalid' || name.endsWith('.invalid')) return Promise.reject(new NameNotResolvedError(host, 'reserved name (.invalid)'));

    const hit = cache.get(name);
    if (hit?.kind === 'positive') {
      counters.hits++;
      return Promise.resolve([...hit.addresses]);
    }
    if (hit?.kind === 'negative') {
      counters.negativeHits++;
      return Promise.reject(new NameNotResolvedError(name, hit.reason));
    }

    let pending = inflight.get(name);
    if (pending) counters.inflightWaits++;
    else {
      counters.misses++;
      pending = query(name);
      inflight.set(name, pending);
      const done = (): void => void inflight.delete(name);
      pending.then(done, done);
    }
    // Each caller gets its own array; the address objects are frozen and shared.
    return pending.then((list) => [...list]);
  }

  const resolver: DnsResolver = {
    lookup,
    stats: () => ({ ...counters }),
    close() {
      backend.cancel();
      cache.clear();
    },
  };
  COUNTERS.set(resolver, counters);
  return resolver;
}
