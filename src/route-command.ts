import { isIP } from 'node:net';
import { loadConfig } from './config/load.js';
import type { Command } from './config/types.js';
import { ConfigError } from './errors.js';
import { createResolver } from './dns/resolver.js';
import { silentLogger } from './observe/logger.js';
import { buildOutbounds, closeOutbounds } from './outbound/build.js';
import { isPoolOutbound } from './outbound/stats.js';
import { compileRouter } from './router/compile.js';
import { splitSessionUser } from './server/auth.js';

export interface RouteFlags {
  config?: string | undefined;
  user?: string | undefined;
  source?: string | undefined;
  udp?: boolean | undefined;
  bind?: boolean | undefined;
}

/** `socksgate route HOST PORT`: one line with the rule and action (and the pool member). */
export async function routeCommand(args: readonly string[], flags: RouteFlags): Promise<number> {
  const [host, portText] = args;
  const port = Number(portText);
  if (!host || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: socksgate route HOST PORT [--user U] [--source IP] [--udp | --bind] [--config FILE]');
    return 2;
  }
  if (flags.source !== undefined && isIP(flags.source) === 0) {
    console.error(`--source must be an IP address, got "${flags.source}"`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig({ path: flags.config });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) console.error(issue);
    return 1;
  }
  const log = silentLogger();
  const dns = createResolver(config.dns, { log });
  const { user, sessionKey } = flags.user ? splitSessionUser(flags.user) : { user: undefined, sessionKey: undefined };
  const source = flags.source ?? '127.0.0.1';
  const cmd: Command = flags.udp ? 'udp' : flags.bind ? 'bind' : 'connect';
  const router = await compileRouter(config, { dns });
  const decision = await router.decide({ dest: { host: host.replace(/^\[|\]$/g, ''), port }, cmd, user, source });
  // PRODUCT.md's documented prefix `rule=NAME action=ACTION [member=URL]` first; extras after.
  const parts = [`rule=${decision.rule}`, `action=${decision.action}`];
  const upstream = config.upstreams[decision.action];
  if (upstream?.type === 'pool') {
    const outbounds = await buildOutbounds(config, { dns, log });
    const pool = outbounds.get(decision.action);
    const member = pool && isPoolOutbound(pool) ? pool.pick(sessionKey ?? user ?? source) : undefined;
    parts.push(`member=${member ?? 'none'}`);
    await closeOutbounds(outbounds);
  }
  parts.push(`index=${decision.ruleIndex}`);
  if (decision.resolved) parts.push(`resolved=${decision.resolved.map((a) => a.address).join(',')}`);
  console.log(parts.join(' '));
  dns.close();
  return 0;
}
