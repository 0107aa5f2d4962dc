// A complete, already normalised Config for code that takes one directly (the router
// compiler) without going through the YAML loader: fixed limits and DNS settings, the
// caller's rules.
import assert from 'node:assert/strict';
import { parseConfig } from '../../src/config/load.js';
import type { Config, RuleConfig } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';

/** `rules` over fixed settings; list files (`domains_file`, `cidrs_file`) are read from `baseDir`. */
export function routerConfig(rules: RuleConfig[], baseDir = '/nonexistent', def = 'direct', source = '/etc/socksgate.yaml'): Config {
  return {
    listen: [{ host: '127.0.0.1', port: 1080, protocols: ['socks5', 'socks4', 'http'] }],
    workers: 1,
    egress: { deny: [] },
    upstreams: {},
    dns: { cache_size: 100, negative_ttl: 30_000, timeout: 5_000, prefer: 'ipv4', hosts: {} },
    rules,
    default: def,
    limits: {
      handshake_timeout: 10_000,
      connect_timeout: 10_000,
      idle_timeout: 300_000,
      udp_idle_timeout: 60_000,
      bind_timeout: 60_000,
      max_connections: 100,
      max_connections_per_source: 0,
      max_handshakes: 100,
      auth_failures: { max: 10, window: 60_000, block: 300_000 },
      drain_timeout: 1_000,
    },
    udp: {},
    allow_open_proxy: false,
    log: { level: 'silent', format: 'json' },
    base_dir: baseDir,
    source,
  };
}

/** The issues `check` would print for `text` (as cfg.yaml); fails the test when the config is accepted. */
export function issuesOf(text: string, env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseConfig(text, 'cfg.yaml', env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `not a ConfigError: ${String(err)}`);
    return err.issues;
  }
  assert.fail('config was accepted');
}
