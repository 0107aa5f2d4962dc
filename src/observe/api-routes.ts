// The admin API's routes: one table that both the router and /api/openapi.json read,
// so the document cannot describe a route that is not served, nor miss one that is.

import { isIP } from 'node:net';
import { parseDuration, MAX_TIMER_MS } from '../config/duration.js';
import { COMMANDS } from '../config/types.js';
import { isPoolOutbound, isUpstreamOutbound, type MemberStats, type PoolOutbound, type UpstreamStats } from '../outbound/stats.js';
import { parseUsername, USERNAME_GRAMMAR } from '../protocol/username.js';
import { destinationName } from '../protocol/name.js';
import type { ReloadOutcome } from '../reload.js';
import { explainRoute, refusedHost, refusedUser, type RouteParts } from '../route-explain.js';
import { ref, type JsonSchema } from './api-schemas.js';
import { HttpError } from './http.js';
import { memberAsked } from './member-asked.js';
import type { Metrics } from './metrics.js';
import type { ConnectionInfo, OpenConnections } from './open-connections.js';
import { readStats } from './traffic.js';

/** What the API reads and steers: the running gateway. */
export interface ApiTarget {
  readonly snapshot: RouteParts;
  readonly connections: OpenConnections;
  readonly metrics: Metrics;
  readonly reloader: { reload(trigger: string): Promise<ReloadOutcome> };
}

export interface ApiRequest {
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: unknown;
}

export interface ApiRoute {
  method: 'GET' | 'POST' | 'DELETE';
  /** OpenAPI path template. */
  path: string;
  operationId: string;
  summary: string;
  params?: Record<string, JsonSchema>;
  query?: { properties: Record<string, JsonSchema>; required?: string[] };
  body?: JsonSchema;
  /** Status → description and schema (a 401 is added to every route by the document). */
  responses: Record<number, { description: string; schema: JsonSchema }>;
  handle(req: ApiRequest, target: ApiTarget): Promise<{ status: number; body: unknown }>;
}

const ok = (body: unknown): { status: number; body: unknown } => ({ status: 200, body });
const notFound = { description: 'No such thing', schema: ref('Error') };
const badRequest = { description: 'The request does not match its schema', schema: ref('Error') };
const MEMBER_PARAMS = {
  pool: { type: 'string', description: 'Pool name' },
  member: { type: 'string', description: 'Member name as /api/upstreams lists it (or the member URL as the config writes it), URL-encoded' },
};

function connectionJson(c: ConnectionInfo, now: number): Record<string, unknown> {
  return {
    id: c.id,
    client: c.client,
    user: c.user ?? null,
    protocol: c.protocol ?? null,
    command: c.command ?? null,
    destination: c.dest ?? null,
    rule: c.rule ?? null,
    outbound: c.outbound ?? null,
    member: c.member ?? null,
    bytes: { up: c.up, down: c.down },
    age: Math.max(0, now - c.started) / 1000,
  };
}

function counters(s: UpstreamStats): Record<string, unknown> {
  return { healthy: s.healthy, active: s.active, attempts: s.attempts, failures: s.failures, latency_ms: s.latencyMs ?? null };
}

const isoOrNull = (epochMs: number): string | null => (epochMs > 0 ? new Date(epochMs).toISOString() : null);

function memberJson(m: MemberStats): Record<string, unknown> {
  return {
    name: m.name,
    ...counters(m),
    banned_until: isoOrNull(m.bannedUntil),
    ejected_for_ms: m.ejectedForMs,
    consecutive_failures: m.consecutiveFailures,
  };
}

function upstreamsJson(s: RouteParts): Record<string, unknown> {
  const upstreams: unknown[] = [];
  const pools: unknown[] = [];
  for (const [name, cfg] of Object.entries(s.config.upstreams)) {
    const o = s.outbounds.get(name);
    if (!o) continue;
    if (cfg.type === 'pool' && isPoolOutbound(o)) pools.push({ name, strategy: cfg.strategy, members: o.stats().map(memberJson) });
    else if (cfg.type !== 'pool' && isUpstreamOutbound(o)) upstreams.push({ name, type: cfg.type, ...counters(o.stats()) });
  }
  return { upstreams, pools };
}

function poolOf(s: RouteParts, name: string): PoolOutbound {
  const o = s.outbounds.get(name);
  if (s.config.upstreams[name]?.type !== 'pool' || !o || !isPoolOutbound(o)) throw new HttpError(404, `no pool "${name}"`);
  return o;
}

function banAnswer(pool: PoolOutbound, member: string): Record<string, unknown> {
  const m = pool.stats().find((x) => x.name === member);
  return { pool: pool.name, member, banned_until: isoOrNull(m?.bannedUntil ?? 0) };
}

export const ROUTES: readonly ApiRoute[] = [
  {
    method: 'GET',
    path: '/api/connections',
    operationId: 'listConnections',
    summary: 'Open client connections',
    responses: { 200: { description: 'Every open connection', schema: { type: 'array', items: ref('Connection') } } },
    handle: async (_req, t) => {
      const now = Date.now();
      return ok(t.connections.list().map((c) => connectionJson(c, now)));
    },
  },
  {
    method: 'DELETE',
    path: '/api/connections/{id}',
    operationId: 'killConnection',
    summary: 'Close both sockets of an open connection (its access-log line says "killed")',
    params: { id: { type: 'integer', minimum: 1 } },
    responses: { 200: { description: 'Killed', schema: { type: 'object', required: ['id'], properties: { id: { type: 'integer' } } } }, 404: notFound },
    handle: async (req, t) => {
      const id = Number(req.params.id);
      if (!t.connections.kill(id, 'killed')) throw new HttpError(404, `no open connection ${id}`);
      return ok({ id });
    },
  },
  {
    method: 'GET',
    path: '/api/upstreams',
    operationId: 'listUpstreams',
    summary: 'Every upstream and pool member: health, ban, active connections, attempts, failures, latency',
    responses: { 200: { description: 'Upstreams and pools', schema: ref('Upstreams') } },
    handle: async (_req, t) => ok(upstreamsJson(t.snapshot)),
  },
  {
    method: 'POST',
    path: '/api/upstreams/{pool}/members/{member}/ban',
    operationId: 'banMember',
    summary: 'Take a pool member out of rotation for a while (new requests at once; open connections stay)',
    params: MEMBER_PARAMS,
    body: {
      type: 'object',
      required: ['for'],
      additionalProperties: false,
      properties: { for: { type: 'string', pattern: '^\\d+(ms|s|m|h)$', description: 'How long: "10m", "1h", "30s"' } },
    },
    responses: { 200: { description: 'Banned', schema: ref('Ban') }, 400: badRequest, 404: notFound },
    handle: async (req, t) => {
      const pool = poolOf(t.snapshot, req.params.pool!);
      const ms = parseDuration((req.body as { for: string }).for);
      if (ms === undefined || ms <= 0 || ms > MAX_TIMER_MS) throw new HttpError(400, '"for" must be a positive duration of at most 24 days');
      const member = memberAsked(pool, req.params.member!);
      pool.ban(member, ms);
      return ok(banAnswer(pool, member));
    },
  },
  {
    method: 'DELETE',
    path: '/api/upstreams/{pool}/members/{member}/ban',
    operationId: 'unbanMember',
    summary: "Lift a member's ban",
    params: MEMBER_PARAMS,
    responses: { 200: { description: 'Back in rotation (if healthy)', schema: ref('Ban') }, 404: notFound },
    handle: async (req, t) => {
      const pool = poolOf(t.snapshot, req.params.pool!);
      const member = memberAsked(pool, req.params.member!);
      pool.unban(member);
      return ok(banAnswer(pool, member));
    },
  },
  {
    method: 'GET',
    path: '/api/route',
    operationId: 'explainRoute',
    summary: 'The routing decision for a request, as `socksgate route` prints it (with the live pools)',
    query: {
      properties: {
        host: { type: 'string', minLength: 1, maxLength: 255, description: 'An IP address or a name; a name in Unicode is routed in its xn-- (IDNA A-label) form, as a request for it is' },
        port: { type: 'integer', minimum: 0, maximum: 65535 },
        user: { type: 'string', description: 'As a client sends it: session parameters allowed' },
        source: { type: 'string', description: 'Client IP (default 127.0.0.1)' },
        command: { type: 'string', enum: [...COMMANDS] },
      },
      required: ['host', 'port'],
    },
    responses: { 200: { description: 'The decision', schema: ref('Route') }, 400: badRequest },
    handle: async (req, t) => {
      const asked = req.query as { host: string; port: number; user?: string; source?: string; command?: (typeof COMMANDS)[number] };
      const q = { ...asked, host: destinationName(asked.host) };
      const refused = refusedHost(q.host);
      if (refused !== undefined) throw new HttpError(400, `host ${refused}`);
      if (q.source !== undefined && isIP(q.source) === 0) throw new HttpError(400, `source must be an IP address, got "${q.source}"`);
      if (q.user !== undefined && parseUsername(q.user) === undefined) throw new HttpError(400, `user must be USER(-KEY-VALUE)* (${USERNAME_GRAMMAR}), got "${q.user}"`);
      const noUser = q.user === undefined ? undefined : refusedUser(t.snapshot.config, q.user);
      if (noUser !== undefined) throw new HttpError(400, `user ${noUser}`);
      return ok(await explainRoute(t.snapshot, q));
    },
  },
  {
    method: 'POST',
    path: '/api/reload',
    operationId: 'reload',
    summary: 'Reload the config file, exactly as SIGHUP does',
    responses: {
      200: { description: 'Applied to new requests', schema: ref('ReloadOutcome') },
      422: { description: 'Rejected: the running configuration stays', schema: ref('ReloadOutcome') },
    },
    handle: async (_req, t) => {
      const outcome = await t.reloader.reload('api');
      return { status: outcome.result === 'ok' ? 200 : 422, body: outcome };
    },
  },
  {
    method: 'GET',
    path: '/api/stats',
    operationId: 'stats',
    summary: 'Running totals of connections and bytes, overall and per rule (the status page graphs them)',
    responses: { 200: { description: 'Totals now', schema: ref('Stats') } },
    handle: async (_req, t) => ok(await readStats(t.metrics, t.connections)),
  },
];
