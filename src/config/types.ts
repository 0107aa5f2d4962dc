// The typed, validated configuration. Mirrors schemas/config.schema.json;
// durations are already converted to milliseconds, defaults already applied.

export interface ListenConfig {
  host: string; // IPv4 or IPv6 literal; "::" / "0.0.0.0" for all
  port: number;
}

export interface UserConfig {
  username: string;
  password?: string;
  password_hash?: string; // "scrypt$N$r$p$salt$hash" (base64 parts)
}

export interface AuthConfig {
  users: UserConfig[];
  allow_anonymous: boolean;
}

export interface HealthCheckConfig {
  interval: number; // ms
  timeout: number; // ms
  target: string; // "host:port" CONNECTed through each member
}

export interface Socks5UpstreamConfig {
  type: 'socks5';
  host: string;
  port: number;
  username?: string;
  password?: string;
  remote_dns: boolean; // default true
  via?: string; // chain: reach this upstream through another
}

export const POOL_STRATEGIES = ['round-robin', 'random', 'least-connections', 'sticky', 'failover'] as const;
export type PoolStrategy = (typeof POOL_STRATEGIES)[number];

export interface PoolConfig {
  type: 'pool';
  members: string[]; // upstream names or socks5:// URLs
  members_file?: string; // resolved against the config file's directory
  strategy: PoolStrategy; // default round-robin
  health_check?: HealthCheckConfig;
  max_attempts?: number; // members tried before the client gets a failure (default 3)
}

export type UpstreamConfig = Socks5UpstreamConfig | PoolConfig;

export interface DnsConfig {
  servers?: string[]; // "1.1.1.1", "127.0.0.1:5353", "[::1]:53"; absent → system resolver
  cache_size: number; // default 10000
  min_ttl?: number; // ms
  max_ttl?: number; // ms
  negative_ttl: number; // ms, default 30s
  timeout: number; // ms per query, default 5s
  prefer: 'ipv4' | 'ipv6'; // default ipv4
  hosts: Record<string, string>;
}

export const COMMANDS = ['connect', 'udp', 'bind'] as const;
export type Command = (typeof COMMANDS)[number];

export interface RuleConfig {
  name: string;
  domains?: string[];
  domains_file?: string;
  cidrs?: string[];
  cidrs_file?: string;
  resolve?: boolean; // default true: names are resolved to test `cidrs`
  ports?: (number | string)[]; // 443 or "8000-8999"
  users?: string[];
  sources?: string[]; // client CIDRs
  commands?: Command[];
  action: string; // "direct" | "block" | upstream or pool name
}

export interface LimitsConfig {
  handshake_timeout: number; // ms
  connect_timeout: number;
  idle_timeout: number;
  udp_idle_timeout: number;
  bind_timeout: number;
  max_connections: number;
  drain_timeout: number;
}

export interface UdpConfig {
  advertise?: string; // address put in the ASSOCIATE reply instead of the relay's own
}

export interface LogConfig {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export interface MetricsConfig {
  host: string;
  port: number;
}

export interface Config {
  listen: ListenConfig[];
  auth?: AuthConfig;
  upstreams: Record<string, UpstreamConfig>;
  dns: DnsConfig;
  rules: RuleConfig[];
  default: string; // default "direct"
  limits: LimitsConfig;
  udp: UdpConfig;
  allow_open_proxy: boolean;
  log: LogConfig;
  metrics?: MetricsConfig;
  /** Absolute directory of the config file (for *_file paths); cwd for the embedded default. */
  base_dir: string;
  /** Where it came from, for messages: a path or "<embedded default>". */
  source: string;
}
