import { isIP } from 'node:net';
import { loadConfig } from './config/load.js';
import type { Command } from './config/types.js';
import { ConfigError } from './errors.js';
import { createResolver } from './dns/resolver.js';
import { silentLogger } from './observe/logger.js';
import { closeOutbounds } from './outbound/build.js';
import { compileEgress } from './outbound/egress.js';
import { parseUsername, USERNAME_GRAMMAR } from './protocol/username.js';
import { destinationName } from './protocol/name.js';
import { explainRoute, refusedHost, refusedUser } from './route-explain.js';
import { buildRouting } from './routing-build.js';

export interface RouteFlags {
  config?: string | undefined;
  user?: string | undefined;
  source?: string | undefined;
  udp?: boolean | undefined;
  bind?: boolean | undefined;
}

/** `socksgate route HOST PORT`: one line with the rule and action (and the pool member). */
export async function routeCommand(args: readonly string[], flags: RouteFlags): Promise<number> {
  const [typed, portText] = args;
  const host = typed === undefined ? undefined : destinationName(typed);
  const port = Number(portText);
  const wrong =
    !host || portText === undefined
      ? 'HOST and PORT are required'
      : !/^\d+$/.test(portText) || port > 65535
        ? `PORT must be a number from 0 to 65535, got "${portText}"`
        : args.length > 2
          ? `one HOST and one PORT, got ${args.length} arguments`
          : flags.udp && flags.bind
            ? '--udp and --bind name two commands: give one'
            : undefined;
  if (wrong !== undefined || !host) {
    console.error(`${wrong}\nusage: socksgate route HOST PORT [--user U] [--source IP] [--udp | --bind] [--config FILE]`);
    return 2;
  }
  const refused = refusedHost(host);
  if (refused !== undefined) {
    console.error(`HOST ${refused}`);
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
  if (flags.user !== undefined && parseUsername(flags.user) === undefined) {
    console.error(`--user must be USER(-KEY-VALUE)* (${USERNAME_GRAMMAR}), got "${flags.user}"`);
    return 2;
  }
  // A decision for a login the gateway refuses (or cannot take) would show a route no request gets.
  const noUser = flags.user === undefined ? undefined : refusedUser(config, flags.user);
  if (noUser !== undefined) {
    console.error(`--user ${noUser}`);
    return 2;
  }
  const log = silentLogger();
  const dns = createResolver(config.dns, { log });
  // Everything start-up builds (list files, members files, CA files; no network), whatever
  // the decision: a config the gateway would refuse gets no decision, as check reports it.
  let routing;
  try {
    routing = await buildRouting(config, { dns, log });
  } catch (err) {
    dns.close();
    if (!(err instanceof ConfigError)) throw err;
    for (const issue of err.issues) console.error(issue);
    return 1;
  }
  const { router, outbounds } = routing;
  const cmd: Command = flags.udp ? 'udp' : flags.bind ? 'bind' : 'connect';
  const query = { host, port, user: flags.user, source: flags.source, command: cmd };
  const egress = compileEgress(config.egress.deny);
  const e = await explainRoute({ config, router, outbounds, egress }, query);
  await closeOutbounds(outbounds);
  // PRODUCT.md's documented prefix `rule=NAME action=ACTION [member=URL]` first; extras after.
  const parts = [`rule=${e.rule}`, `action=${e.action}`];
  if (e.member !== undefined) parts.push(`member=${e.member ?? 'none'}`);
  parts.push(`index=${e.index}`);
  if (e.resolved) parts.push(`resolved=${e.resolved.join(',')}`);
  if (e.egress) parts.push(`egress=${e.egress}`);
  if (e.unsupported) parts.push(`unsupported=${e.unsupported}`);
  // Last, as the rest of the line: the reason is words.
  if (e.refused?.rep !== undefined) parts.push(`rep=0x${e.refused.rep.toString(16).padStart(2, '0')}`);
  if (e.refused) parts.push(`reason=${e.refused.reason}`);
  console.log(parts.join(' '));
  dns.close();
  return 0;
}
