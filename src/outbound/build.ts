// Builds every way out named in a config: 'direct', each upstream (its `via` chain first)
// and each pool (named members, URL members, `{url, weight, tags}` members, `members_file`).
// 'block' is not here: the session builds blockOutbound(rule) per decision.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config, PoolConfig, ProxyUpstreamConfig, UpstreamConfig } from '../config/types.js';
import type { DnsResolver } from '../dns/types.js';
import { ConfigError } from '../errors.js';
import { cannotRead } from '../config/file-places.js';
import { createDirectOutbound } from './direct.js';
import { createHttpOutbound } from './http.js';
import { looksLikeUrl, parseMemberUrl, type MemberUrl, type Tags } from '../config/member-url.js';
import { parseMembersFile } from './members-file.js';
import type { EgressGuard } from './egress.js';
import { createPoolOutbound } from './pool.js';
import type { ProxyDeps } from './proxy-outbound.js';
import { createSocks4Outbound } from './socks4.js';
import { createSocks5Outbound } from './socks5.js';
import { isPoolOutbound, isUpstreamOutbound } from './stats.js';
import { placeholdersOf } from './credentials.js';
import type { MemberSpec, Outbound } from './types.js';
import { UpstreamState } from './upstream-state.js';

export interface BuildDeps {
  dns: DnsResolver;
  log: Logger;
  /** The outbounds of the config being replaced: pools take over their members' records, unchanged upstreams theirs. */
  previous?: ReadonlyMap<string, Outbound>;
  /** What `direct` may not dial (the compiled `egress.deny`). */
  egress?: EgressGuard;
  /**
   * Where each new pool's rotation starts, as a fraction of the way round its members (0: the
   * first): a cluster worker's slot over the worker count, so the workers, each rotating on its
   * own, start spread over the members rather than all at the first.
   */
  rotationStart?: number;
}

export async function buildOutbounds(config: Config, deps: BuildDeps): Promise<Map<string, Outbound>> {
  const connectTimeout = config.limits.connect_timeout;
  const built = new Map<string, Outbound>();
  const building = new Set<string>();
  // An upstream that failed fails each one built on it with the same error, read once.
  const failed = new Map<string, ConfigError>();
  built.set('direct', createDirectOutbound({ dns: deps.dns, connectTimeout, egress: deps.egress }));
  const cas = new Map<string, Buffer>();

  /** One proxy upstream of any type, reached through `via` when given; `state`: a named upstream's record. */
  async function proxy(name: string, cfg: ProxyUpstreamConfig, via: Outbound | undefined, state?: UpstreamState): Promise<Outbound> {
    const common: ProxyDeps = { dns: deps.dns, connectTimeout, ...(via ? { via } : {}), ...(state ? { state } : {}) };
    if (cfg.type === 'socks5') return createSocks5Outbound(name, cfg, common);
    if (cfg.type === 'socks4') return createSocks4Outbound(name, cfg, common);
    if (cfg.ca === undefined) return createHttpOutbound(name, cfg, common);
    return createHttpOutbound(name, cfg, { ...common, ca: await readCa(config, name, cfg.ca, cas) });
  }

  /**
   * A named upstream's record from the config being replaced: kept while it and each `via` hop
   * behind it are unchanged, compared as a pool compares its named members (a fresh one else).
   */
  const recordOf = (name: string): UpstreamState => takeOverUpstream(digest(hops(config, name)), deps.previous?.get(name));

  // Recursion in dependency order; the loader already rejects cycles and dangling names,
  // the guard only keeps a bad config from overflowing the stack.
  async function build(name: string): Promise<Outbound> {
    const done = built.get(name);
    if (done) return done;
    const failure = failed.get(name);
    if (failure) throw failure;
    const cfg = config.upstreams[name];
    if (!cfg) throw new ConfigError([`${config.source}: upstream "${name}" is not defined`]);
    if (building.has(name)) throw new ConfigError([`${config.source}: upstream "${name}" is part of a via cycle`]);
    building.add(name);
    try {
      const out =
        cfg.type === 'pool' ? await buildPool(name, cfg) : await proxy(name, cfg, cfg.via === undefined ? undefined : await build(cfg.via), recordOf(name));
      built.set(name, out);
      return out;
    } catch (err) {
      if (err instanceof ConfigError) failed.set(name, err);
      throw err;
    } finally {
      building.delete(name);
    }
  }

  async function buildPool(name: string, cfg: PoolConfig): Promise<Outbound> {
    const where = `${config.source}: upstreams.${name}.members`;
    const members = new Map<string, MemberSpec>();
    /** Per display name, the endpoints of the URL members shown by it (a provider's list may share one name). */
    const shown = new Map<string, Set<string>>();
    const add = async (m: MemberUrl, weight = 1, tags: Tags = {}): Promise<void> => {
      // The same URL twice is one member: sticky hashing needs distinct names.
      const endpoint = digest([m.config]);
      let same = shown.get(m.display);
      if (same?.has(endpoint)) return;
      if (!same) shown.set(m.display, (same = new Set()));
      // Members apart only in what the display leaves out (a provider that reads its session
      // from the password) are members all the same: numbered in order, never named by the secret.
      const memberName = same.size === 0 ? m.display : `${m.display}#${same.size + 1}`;
      same.add(endpoint);
      const outbound = await proxy(memberName, m.config, undefined);
      members.set(memberName, { outbound, endpoint, weight, tags: { ...m.tags, ...tags }, placeholders: placeholdersOf(m.config) });
    };
    for (const [i, m] of cfg.members.entries()) {
      const text = typeof m === 'string' ? m : m.url;
      const weight = typeof m === 'string' ? undefined : m.weight;
      const tags = typeof m === 'string' ? undefined : m.tags;
      if (!looksLikeUrl(text)) {
        // A named upstream: its own credentials may carry templates too, and so may those of
        // each `via` hop before it (every hop fills them for the request).
        const named = await build(text);
        const path = hops(config, text);
        const placeholders = new Set(path.flatMap((up) => (up.type === 'pool' ? [] : placeholdersOf({ username: up.username, password: 'password' in up ? up.password : undefined }))));
        if (members.has(named.name)) continue;
        members.set(named.name, { outbound: named, endpoint: digest(path), weight: weight ?? 1, tags: tags ?? {}, placeholders: [...placeholders] });
        continue;
      }
      let parsed: MemberUrl;
      try {
        parsed = parseMemberUrl(text);
      } catch (err) {
        throw new ConfigError([`${where}[${i}]: ${(err as Error).message}`]);
      }
      await add(parsed, weight, tags);
    }
    if (cfg.members_file !== undefined) for (const m of await readMembersFile(config, name, cfg)) await add(m);
    const before = deps.previous?.get(name);
    const inherit = before && isPoolOutbound(before) ? before.memory() : undefined;
    return createPoolOutbound(name, cfg, { members: [...members.values()], log: deps.log, inherit, ...(deps.rotationStart ? { rotationStart: deps.rotationStart } : {}) });
  }

  // Every upstream is built, so that one run of `check` names every bad members file or CA file.
  const issues = new Set<string>();
  try {
    for (const name of Object.keys(config.upstreams)) {
      await build(name).catch((err: unknown) => {
        if (!(err instanceof ConfigError)) throw err;
        for (const issue of err.issues) issues.add(issue);
      });
    }
  } catch (err) {
    // A config that fails part-way must not leave the pools already built checking health.
    await closeOutbounds(built);
    throw err;
  }
  if (issues.size > 0) {
    await closeOutbounds(built);
    throw new ConfigError([...issues]);
  }
  return built;
}

/** The configs of `name` and of each `via` hop behind it, in order (the loader has rejected cycles). */
function hops(config: Config, name: string): UpstreamConfig[] {
  const out: UpstreamConfig[] = [];
  for (let at: string | undefined = name; at !== undefined && out.length <= Object.keys(config.upstreams).length; ) {
    const cfg: UpstreamConfig | undefined = config.upstreams[at];
    if (cfg === undefined) break;
    out.push(cfg);
    at = cfg.type === 'pool' ? undefined : cfg.via;
  }
  return out;
}

/** A fixed-size fingerprint of configs: compared across reloads, and no secret kept in clear. */
function digest(configs: readonly unknown[]): string {
  return createHash('sha256').update(JSON.stringify(configs)).digest('base64url');
}

/** Every line's member, or one ConfigError naming each bad line at `FILE:LINE:COL` (or a file with none). */
async function readMembersFile(config: Config, name: string, pool: PoolConfig): Promise<MemberUrl[]> {
  const path = resolve(config.base_dir, pool.members_file!);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError([cannotRead(config, ['upstreams', name, 'members_file'], path, err)]);
  }
  const entries = parseMembersFile(text, pool.members_scheme);
  const bad = entries.flatMap((e) => ('error' in e ? [`${path}:${e.line}:${e.col}: ${e.error}`] : []));
  if (bad.length > 0) throw new ConfigError(bad);
  // A list caught half-written (`fetch > proxies.txt`) or not fetched yet: refused as an emptied
  // config file is, so a reload keeps the running members instead of a pool that fails every request.
  if (entries.length === 0) throw new ConfigError([`${path}:1:1: members_file holds no member (blank lines and comments only)`]);
  return entries.flatMap((e) => ('member' in e ? [e.member] : []));
}

/** The PEM an http upstream's `ca` names (read once per build, shared by upstreams naming the same file). */
async function readCa(config: Config, upstream: string, path: string, cache: Map<string, Buffer>): Promise<Buffer> {
  const known = cache.get(path);
  if (known) return known;
  let pem: Buffer;
  try {
    pem = await readFile(path);
  } catch (err) {
    throw new ConfigError([cannotRead(config, ['upstreams', upstream, 'ca'], path, err)]);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new ConfigError([`${path}:1:1: upstreams.${upstream}.ca: holds no PEM certificate`]);
  }
  cache.set(path, pem);
  return pem;
}

/** Starts health checks and timers of every outbound in the map (each once): the snapshot is live. */
export function startOutbounds(outbounds: ReadonlyMap<string, Outbound>): void {
  for (const o of new Set(outbounds.values())) o.start?.();
}

/** Stops health checks and timers of every outbound in the map (each once). */
export async function closeOutbounds(outbounds: ReadonlyMap<string, Outbound>): Promise<void> {
  await Promise.all([...new Set(outbounds.values())].map((o) => o.close()));
}

/**
 * The record of the upstream `previous` when it was built from the same `endpoint`, or a
 * fresh one. A name is not enough: an upstream keeps its name when its host, port,
 * credentials or chain change, and what was counted of the old proxy says nothing of the new one.
 */
function takeOverUpstream(endpoint: string, previous: Outbound | undefined): UpstreamState {
  const known = previous && isUpstreamOutbound(previous) ? previous.memory() : undefined;
  return known?.endpoint === endpoint ? known : new UpstreamState(endpoint);
}
