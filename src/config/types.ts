// The typed, validated configuration. Mirrors schemas/config.schema.json;
// durations are already converted to milliseconds, defaults already applied.

export const PROTOCOLS = ['socks5', 'socks4', 'http'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export interface ProxyProtocolConfig {
  trusted: string[]; // CIDRs or addresses of the load balancers allowed to send a header
}

export interface ListenConfig {
  host: string; // IPv4 or IPv6 literal; "::" / "0.0.0.0" for all
  port: number;
  protocols: Protocol[]; // default all three
  proxy_protocol?: ProxyProtocolConfig;
}

export interface UserConfig {
  username: string;
  password?: string;
  password_hash?: string; // "scrypt$N$r$p$salt$hash" (base64 parts)
  max_connections?: number; // open at once
  bandwidth?: number; // bytes/s, up + down, all of this user's connections
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

export interface Socks4UpstreamConfig {
  type: 'socks4';
  host: string;
  port: number;
  username?: string; // USERID
  remote_dns: boolean; // default true: SOCKS4a
  via?: string;
}

export interface HttpUpstreamConfig {
  type: 'http';
  host: string;
  port: number;
  username?: string;
  password?: string;
  tls: boolean; // default false
  ca?: string; // absolute path of a PEM CA file (resolved against the config's directory)
  servername?: string;
  remote_dns: boolean; // default true
  via?: string;
}

export type ProxyUpstreamConfig = Socks5UpstreamConfig | Socks4UpstreamConfig | HttpUpstreamConfig;

export const POOL_STRATEGIES = ['round-robin', 'random', 'least-connections', 'sticky', 'failover', 'fastest'] as const;
export type PoolStrategy = (typeof POOL_STRATEGIES)[number];

export const MEMBER_SCHEMES = ['socks5', 'socks5h', 'socks4', 'socks4a', 'http', 'https'] as const;
export type MemberScheme = (typeof MEMBER_SCHEMES)[number];

export interface PoolMemberObject {
  url: string;
  weight?: number; // default 1
  tags?: Record<string, string>;
}
/** An upstream name, a proxy URL (with optional #k=v tags), or an object. */
export type PoolMemberConfig = string | PoolMemberObject;

export interface PoolConfig {
  type: 'pool';
  members: PoolMemberConfig[];
  members_file?: string; // resolved against the config file's directory
  members_scheme: MemberScheme; // default socks5
  strategy: PoolStrategy; // default round-robin
  sticky_lifetime?: number; // ms
  health_check?: HealthCheckConfig;
  max_attempts?: number; // members tried before the client gets a failure (default 3)
  ban_after: number; // consecutive failures before ejection (default 3)
}

export type UpstreamConfig = ProxyUpstreamConfig | PoolConfig;

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
  max_connections_per_source: number; // 0 = no limit
  max_handshakes: number;
  auth_failures: { max: number; window: number; block: number }; // window/block in ms
  drain_timeout: number;
}

/** Named destination ranges the egress guard knows (PRODUCT.md "Egress guard"). */
export const EGRESS_NAMES = ['loopback', 'private', 'link-local', 'metadata', 'unspecified'] as const;

export interface EgressConfig {
  deny: string[]; // CIDRs, addresses or EGRESS_NAMES; the default depends on the listeners
}

export interface UdpConfig {
  advertise?: string; // address put in the ASSOCIATE reply instead of the relay's own
}

export interface LogConfig {
  level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  format: 'json' | 'pretty';
}

export interface MetricsConfig {
  host: string;
  port: number;
  api_token?: string; // absent → /api is not served
  per_user: boolean;
}

export interface Config {
  listen: ListenConfig[];
  workers: number | 'auto';
  auth?: AuthConfig;
  upstreams: Record<string, UpstreamConfig>;
  dns: DnsConfig;
  rules: RuleConfig[];
  default: string; // default "direct"
  egress: EgressConfig;
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
