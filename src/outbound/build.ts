// Builds every way out named in a config: 'direct', each upstream (its `via` chain first)
// and each pool (inline URL members, named members, `members_file`). 'block' is not
// here: the session builds blockOutbound(rule) per decision.

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config, PoolConfig, Socks5UpstreamConfig } from '../config/types.js';
import type { DnsResolver } from '../dns/types.js';
import { ConfigError } from '../errors.js';
import { createDirectOutbound } from './direct.js';
import type { EgressGuard } from './egress.js';
import { looksLikeUrl, parseMemberUrl, parseMembersFile, redact } from './member-url.js';
import { createPoolOutbound } from './pool.js';
import { createSocks5Outbound } from './socks5.js';
import { isPoolOutbound } from './stats.js';
import { placeholdersOf } from './credentials.js';
import { splitTags } from './member-tags.js';
import type { MemberSpec, Outbound } from './types.js';

export interface BuildDeps {
  dns: DnsResolver;
  log: Logger;
  /** The outbounds of the config being replaced: pools take over their members' health. */
  previous?: ReadonlyMap<string, Outbound>;
  /** What `direct` may not dial (the compiled `egress.deny`). */
  egress?: EgressGuard;
}

export async function buildOutbounds(config: Config, deps: BuildDeps): Promise<Map<string, Outbound>> {
  const connectTimeout = config.limits.connect_timeout;
  const built = new Map<string, Outbound>();
  const building = new Set<string>();
  built.set('direct', createDirectOutbound({ dns: deps.dns, connectTimeout, egress: deps.egress }));

  const socks5 = (name: string, cfg: Socks5UpstreamConfig, via: Outbound | undefined): Outbound =>
    createSocks5Outbound(name, cfg, via ? { dns: deps.dns, connectTimeout, via } : { dns: deps.dns, connectTimeout });

  // Recursion in dependency order; the loader already rejects cycles and dangling names,
  // the guard only keeps a bad config from overflowing the stack.
  async function build(name: string): Promise<Outbound> {
    const done = built.get(name);
    if (done) return done;
    const cfg = config.upstreams[name];
    if (!cfg) throw new ConfigError([`${config.source}: upstream "${name}" is not defined`]);
    if (building.has(name)) throw new ConfigError([`${config.source}: upstream "${name}" is part of a via cycle`]);
    building.add(name);
    if (cfg.type !== 'pool' && cfg.type !== 'socks5') {
      throw new ConfigError([`${config.source}: upstreams.${name}: type ${cfg.type} is not supported yet`]);
    }
    const out =
      cfg.type === 'pool'
        ? await buildPool(name, cfg)
        : socks5(name, cfg, cfg.via === undefined ? undefined : await build(cfg.via));
    building.delete(name);
    built.set(name, out);
    return out;
  }

  async function buildPool(name: string, cfg: PoolConfig): Promise<Outbound> {
    const entries: { text: string; where: string; weight?: number | undefined; tags?: Record<string, string> | undefined }[] = cfg.members.map((m) => ({
      ...(typeof m === 'string' ? { text: m } : { text: m.url, weight: m.weight, tags: m.tags }),
      where: `${config.source}: upstreams.${name}.members`,
    }));
    if (cfg.members_file !== undefined) entries.push(...(await readMembersFile(config, cfg.members_file)));
    const members = new Map<string, MemberSpec>();
    for (const { text, where, weight, tags } of entries) {
      if (!looksLikeUrl(text)) {
        const named = await build(text);
        const up = config.upstreams[text];
        const creds = up && up.type !== 'pool' ? { username: up.username, password: 'password' in up ? up.password : undefined } : {};
        members.set(named.name, { outbound: named, weight: weight ?? 1, tags: tags ?? {}, placeholders: placeholdersOf(creds) });
        continue;
      }
      let parsed;
      let split;
      try {
        split = splitTags(text);
        parsed = parseMemberUrl(split.url);
      } catch (err) {
        throw new ConfigError([`${where}: ${(err as Error).message}`]);
      }
      // The same URL twice is one member: sticky hashing needs distinct names.
      if (members.has(parsed.display)) continue;
      members.set(parsed.display, {
        outbound: socks5(parsed.display, parsed.config, undefined),
        weight: weight ?? 1,
        tags: { ...split.tags, ...tags },
        placeholders: placeholdersOf(parsed.config),
      });
    }
    const before = deps.previous?.get(name);
    const inherit = before && isPoolOutbound(before) ? (member: string) => before.healthOf(member) : undefined;
    return createPoolOutbound(name, cfg, { members: [...members.values()], log: deps.log.child({ pool: name }), inherit });
  }

  try {
    for (const name of Object.keys(config.upstreams)) await build(name);
  } catch (err) {
    // A config that fails part-way must not leave the pools already built checking health.
    await closeOutbounds(built);
    throw err;
  }
  return built;
}

async function readMembersFile(config: Config, file: string): Promise<{ text: string; where: string }[]> {
  const path = resolve(config.base_dir, file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([`${path}: cannot read members_file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`]);
  }
  return parseMembersFile(text).map(({ line, url }) => {
    if (!looksLikeUrl(url)) throw new ConfigError([`${path}:${line}:1: "${redact(url)}" is not a socks5:// URL`]);
    return { text: url, where: `${path}:${line}:1` };
  });
}

/** Starts health checks and timers of every outbound in the map (each once): the snapshot is live. */
export function startOutbounds(outbounds: ReadonlyMap<string, Outbound>): void {
  for (const o of new Set(outbounds.values())) o.start?.();
}

/** Stops health checks and timers of every outbound in the map (each once). */
export async function closeOutbounds(outbounds: ReadonlyMap<string, Outbound>): Promise<void> {
  await Promise.all([...new Set(outbounds.values())].map((o) => o.close()));
}
