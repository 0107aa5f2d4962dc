// The schema-valid raw object → the typed Config: durations become milliseconds, the
// file's origin is recorded, and the whole tree is frozen (a reload builds a new one).

import { resolve } from 'node:path';
import { durationMs } from './duration.js';
import { isLoopback } from './net.js';
import { rateBytes } from './rate.js';
import type {
  AuthConfig,
  Config,
  DnsConfig,
  EgressConfig,
  HealthCheckConfig,
  LimitsConfig,
  ListenConfig,
  PoolConfig,
  ProxyUpstreamConfig,
  UpstreamConfig,
  UserConfig,
} from './types.js';

type Durations<T, K extends keyof T> = Omit<T, K> & { [P in K]: string };

type RawLimits = Durations<LimitsConfig, Exclude<keyof LimitsConfig, 'max_connections' | 'max_connections_per_source' | 'max_handshakes' | 'auth_failures'>> & {
  auth_failures: { max: number; window: string; block: string };
};
type RawDns = Durations<DnsConfig, 'negative_ttl' | 'timeout'> & { min_ttl?: string; max_ttl?: string };
type RawPool = Omit<PoolConfig, 'health_check' | 'sticky_lifetime'> & {
  health_check?: Durations<HealthCheckConfig, 'interval' | 'timeout'>;
  sticky_lifetime?: string;
};
type RawUpstream = ProxyUpstreamConfig | RawPool;
type RawUser = Omit<UserConfig, 'bandwidth'> & { bandwidth?: string };

/** What Ajv hands back once the schema (with `useDefaults`) accepted the document. */
export type RawConfig = Omit<Config, 'limits' | 'dns' | 'upstreams' | 'auth' | 'egress' | 'base_dir' | 'source'> & {
  limits: RawLimits;
  dns: RawDns;
  upstreams: Record<string, RawUpstream>;
  auth?: Omit<AuthConfig, 'users'> & { users: RawUser[] };
  egress?: Partial<EgressConfig>;
};

/** `listening`: on a reload, the listeners running (the egress default must cover them too). */
export function toConfig(raw: RawConfig, source: string, baseDir: string, listening: readonly ListenConfig[] = []): Config {
  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, u] of Object.entries(raw.upstreams)) upstreams[name] = u.type === 'pool' ? toPool(u) : toProxy(u, baseDir);
  const { auth, egress, ...rest } = raw;
  const config: Config = {
    ...rest,
    upstreams,
    egress: { deny: egress?.deny ?? defaultEgressDeny([...raw.listen, ...listening]) },
    dns: toDns(raw.dns),
    limits: toLimits(raw.limits),
    base_dir: baseDir,
    source,
  };
  if (auth) config.auth = { ...auth, users: auth.users.map(toUser) };
  return deepFreeze(config);
}

/** PRODUCT.md "Egress guard": a loopback-only gateway serves its own machine; any other is reachable by others. */
export function defaultEgressDeny(listen: readonly ListenConfig[]): string[] {
  return listen.every((l) => isLoopback(l.host))
    ? ['link-local', 'metadata']
    : ['loopback', 'private', 'link-local', 'metadata', 'unspecified'];
}

function toUser(u: RawUser): UserConfig {
  const { bandwidth, ...rest } = u;
  return bandwidth === undefined ? rest : { ...rest, bandwidth: rateBytes(bandwidth) };
}

function toProxy(u: ProxyUpstreamConfig, baseDir: string): ProxyUpstreamConfig {
  return u.type === 'http' && u.ca !== undefined ? { ...u, ca: resolve(baseDir, u.ca) } : u;
}

function toLimits(l: RawLimits): LimitsConfig {
  return {
    handshake_timeout: durationMs(l.handshake_timeout),
    connect_timeout: durationMs(l.connect_timeout),
    idle_timeout: durationMs(l.idle_timeout),
    udp_idle_timeout: durationMs(l.udp_idle_timeout),
    bind_timeout: durationMs(l.bind_timeout),
    max_connections: l.max_connections,
    max_connections_per_source: l.max_connections_per_source,
    max_handshakes: l.max_handshakes,
    auth_failures: { max: l.auth_failures.max, window: durationMs(l.auth_failures.window), block: durationMs(l.auth_failures.block) },
    drain_timeout: durationMs(l.drain_timeout),
  };
}

function toDns(d: RawDns): DnsConfig {
  const { min_ttl, max_ttl, ...rest } = d;
  const dns: DnsConfig = { ...rest, negative_ttl: durationMs(d.negative_ttl), timeout: durationMs(d.timeout) };
  if (min_ttl !== undefined) dns.min_ttl = durationMs(min_ttl);
  if (max_ttl !== undefined) dns.max_ttl = durationMs(max_ttl);
  return dns;
}

function toPool(p: RawPool): PoolConfig {
  const { health_check, sticky_lifetime, ...rest } = p;
  const pool: PoolConfig = rest;
  if (sticky_lifetime !== undefined) pool.sticky_lifetime = durationMs(sticky_lifetime);
  if (health_check) {
    pool.health_check = { ...health_check, interval: durationMs(health_check.interval), timeout: durationMs(health_check.timeout) };
  }
  return pool;
}

/** Freezes every object and array reachable from `value`, so no consumer can mutate a shared config. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
