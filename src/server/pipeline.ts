// The one request path, for every front: admission → route → outbound → the front's reply →
// relay → metrics and the one access-log line. A front only decodes its protocol into a
// ProxyRequest and encodes the outcome back (request.ts).

import type { Logger } from 'pino';
import { ProtocolError, Rep } from '../errors.js';
import type { Config } from '../config/types.js';
import { lineWriter, type LineWriter } from '../observe/logger.js';
import type { Metrics, SessionTotals } from '../observe/metrics.js';
import type { Connection } from '../outbound/types.js';
import { handleBind } from './bind.js';
import { ACCESS_RECORD_KEYS, boundOf, CLIENT_LEFT, refusedLogins, type AccessRecord, type CommandContext } from './context.js';
import { countAttempt, outboundContext } from './outbound-context.js';
import { relay, writeAhead, type RelayResult } from './relay.js';
import { route, type Routed } from './route.js';
import { handleUdpAssociate } from './udp-associate.js';
import { giveUp } from '../outbound/give-up.js';

/**
 * Admission on a complete request, before anything is routed or dialed: the per-source and
 * per-user connection limits (limits.ts). A refusal throws LimitError, which every front maps
 * (SOCKS5 0x02, SOCKS4 0x5B, HTTP 429); the slots taken are given back when the connection ends.
 * A promise only in a cluster worker, when a limited share is asked of the instance's ledger.
 */
export function admit(ctx: CommandContext): void | Promise<void> {
  return ctx.limits.admit(ctx.request, ctx.snapshot.config);
}

/** Runs one request to its end. Never throws: a failure before the grant becomes the front's refusal. */
export async function serve(ctx: CommandContext): Promise<void> {
  try {
    const admitting = admit(ctx);
    if (admitting) await admitting;
    switch (ctx.request.command) {
      case 'connect':
        // Only the dial is awaited in here: past the grant nothing is refused, and no frame
        // stays suspended for the life of the relay (each one held is memory per connection).
        return relayConnect(ctx, await openConnect(ctx));
      case 'bind':
        return await handleBind(ctx);
      case 'udp':
        if (ctx.request.protocol !== 'socks5') throw new ProtocolError('UDP ASSOCIATE is SOCKS5 only', Rep.COMMAND_NOT_SUPPORTED);
        return await handleUdpAssociate(ctx);
    }
  } catch (err) {
    refuse(ctx, err);
  }
}

/** The front answers a failure that came before its grant; after it, the client is just cut. */
export function refuse(ctx: CommandContext, err: unknown): void {
  // A request given up because its client left (or the gateway stopped) says so, whatever the
  // outbound called the wait it cut short (`upstream "x": aborted`): the upstream did nothing wrong.
  const cause = ctx.cancel.aborted ? ctx.cancel.reason : err;
  ctx.record.error ??= cause instanceof Error ? cause.message : String(cause);
  if (ctx.client.destroyed) return;
  if (ctx.record.rep === undefined) ctx.record.rep = ctx.front.refused(err);
  else ctx.client.destroy();
}

/**
 * Route and dial (CONNECT, and each forwarded HTTP request): the connection, or a GatewayError
 * to refuse with. `routed`: the request's route, when the caller has taken it already.
 */
export async function openConnect(ctx: CommandContext, routed?: Routed): Promise<Connection> {
  const { decision, outbound } = routed ?? (await route(ctx, 'connect'));
  const started = performance.now();
  const octx = outboundContext(ctx);
  if (decision.resolved) octx.resolved = decision.resolved;
  if (decision.unresolved !== undefined) octx.unresolved = decision.unresolved;
  if (decision.cidrs) octx.egressLift = decision.cidrs;
  octx.command = ctx.request.protocol === 'http' ? 'http' : 'connect';
  let conn: Connection;
  try {
    conn = await outbound.connect(ctx.dest, octx);
  } catch (err) {
    countAttempt(ctx, outbound.name, started, false);
    if (octx.member !== undefined) ctx.record.member = octx.member;
    throw err;
  }
  countAttempt(ctx, outbound.name, started, true);
  if (conn.member) ctx.record.member = conn.member;
  ctx.attach(conn.socket);
  return conn;
}

/**
 * CONNECT (RFC 1928 §4, RFC 9110 §9.3.6, SOCKS4), once dialed: grant with the real local
 * address, relay. A plain function whose promise (the relay's, then the record) never
 * rejects; a throw before the relay starts is the caller's to refuse.
 */
function relayConnect(ctx: CommandContext, conn: Connection): Promise<void> | undefined {
  const { client, front, record } = ctx;
  let relaying: Promise<RelayResult>;
  try {
    if (client.destroyed) {
      // Gone while dialing, its close not yet reported (so the dial was not aborted).
      record.error ??= CLIENT_LEFT;
      giveUp(conn);
      return undefined;
    }
    front.granted(() => conn.bound ?? boundOf(conn.socket));
    if (conn.head) writeAhead(client, conn.head, ctx.limits.throttle);
    record.rep = Rep.SUCCEEDED;
    // Payload the client pipelined behind its request goes first (RFC 1928 allows no gap).
    relaying = relay(client, conn.socket, { idleTimeout: ctx.snapshot.config.limits.idle_timeout, early: front.remainder(), throttle: ctx.limits.throttle });
  } catch (err) {
    // A grant that could not be encoded (an upstream's BND.ADDR no reply can carry): the
    // client is refused, and the dialed socket must not stay open behind it.
    giveUp(conn);
    throw err;
  }
  return relaying.then((result) => {
    record.up = result.up;
    record.down = result.down + (conn.head?.length ?? 0);
    if (result.reason !== 'closed') record.error ??= result.error?.message ?? result.reason;
    conn.release?.();
  });
}

/** The one access-log line of a finished connection, HTTP request or UDP association, and its counters. */
export function logAccess(metrics: Metrics, log: Logger, record: AccessRecord, startedMs: number, config: Config): void {
  record.ms = Math.round(performance.now() - startedMs);
  const totals: SessionTotals = { protocol: record.protocol ?? 'none', command: record.cmd ?? 'none', rep: String(record.rep ?? 'none'), up: record.up, down: record.down };
  if (record.rule !== undefined) totals.rule = record.rule;
  if (record.user !== undefined && !refusedLogins.has(record)) totals.user = record.user;
  metrics.sessionEnded(totals, config);
  // The record is the line's object as it is (`sid` first, `ms` last): no copy per line.
  accessLine(log)(record);
}

/** The access-log line's writer, one per logger (the gateway's). */
const accessWriters = new WeakMap<Logger, LineWriter>();

function accessLine(log: Logger): LineWriter {
  let write = accessWriters.get(log);
  if (!write) accessWriters.set(log, (write = lineWriter(log, 'session end', ACCESS_RECORD_KEYS)));
  return write;
}
