// The schema-valid raw object → the typed Config: durations become milliseconds, the
// file's origin is recorded, and the whole tree is frozen (a reload builds a new one).

import { durationMs } from './duration.js';
import type { Config, DnsConfig, HealthCheckConfig, LimitsConfig, PoolConfig, Socks5UpstreamConfig, UpstreamConfig } from './types.js';

type Durations<T, K extends keyof T> = Omit<T, K> & { [P in K]: string };

type RawLimits = Durations<LimitsConfig, Exclude<keyof LimitsConfig, 'max_connections'>>;
type RawDns = Durations<DnsConfig, 'negative_ttl' | 'timeout'> & { min_ttl?: string; max_ttl?: string };
type RawPool = Omit<PoolConfig, 'health_check'> & { health_check?: Durations<HealthCheckConfig, 'interval' | 'timeout'> };
type RawUpstream = Socks5UpstreamConfig | RawPool;

/** What Ajv hands back once the schema (with `useDefaults`) accepted the document. */
export type RawConfig = Omit<Config, 'limits' | 'dns' | 'upstreams' | 'base_dir' | 'source'> & {
  limits: RawLimits;
  dns: RawDns;
  upstreams: Record<string, RawUpstream>;
};

export function toConfig(raw: RawConfig, source: string, baseDir: string): Config {
  const upstreams: Record<string, UpstreamConfig> = {};
  for (const [name, u] of Object.entries(raw.upstreams)) upstreams[name] = u.type === 'pool' ? toPool(u) : u;
  const config: Config = {
    ...raw,
    upstreams,
    dns: toDns(raw.dns),
    limits: toLimits(raw.limits),
    base_dir: baseDir,
    source,
  };
  return deepFreeze(config);
}

function toLimits(l: RawLimits): LimitsConfig {
  return {
    handshake_timeout: durationMs(l.handshake_timeout),
    connect_timeout: durationMs(l.connect_timeout),
    idle_timeout: durationMs(l.idle_timeout),
    udp_idle_timeout: durationMs(l.udp_idle_timeout),
    bind_timeout: durationMs(l.bind_timeout),
    max_connections: l.max_connections,
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
  const { health_check, ...rest } = p;
  if (!health_check) return rest;
  return {
    ...rest,
    health_check: { ...health_check, interval: durationMs(health_check.interval), timeout: durationMs(health_check.timeout) },
  };
}

/** Freezes every object and array reachable from `value`, so no consumer can mutate a shared config. */
export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
