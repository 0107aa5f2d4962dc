// One origin connection kept per client connection, for its next absolute-form request to the
// same place (RFC 9112 §9.3: persistence). A crawler or a browser sends request after request
// to one origin over one keep-alive connection to its proxy; each was dialed anew, a TCP
// handshake (and an upstream's handshake) per request, where node's agent, Squid and
// proxy-chain reuse the connection. Kept only when the next request would take the same path:
// the same config, rule, outbound (`direct`: a proxy may give each connection another exit,
// which rotation relies on), destination, user and session parameters. Each request is
// still routed on its own.

import type { IncomingMessage } from 'node:http';
import type { Outbound, Connection } from '../../outbound/types.js';
import type { ClientConnection } from '../client.js';
import type { CommandContext, Snapshot } from '../context.js';
import { giveUp } from '../../outbound/give-up.js';

/**
 * How long a kept connection may wait for the next request: below the keep-alive timeouts of
 * common origins (node and Apache close after 5 s), so the origin seldom closes it just as a
 * request is sent on it. Shorter still when idle_timeout is.
 */
export const KEEP_IDLE_MS = 4_000;

interface Kept {
  readonly key: string;
  readonly snapshot: Snapshot;
  readonly origin: Connection;
  readonly drop: () => void;
}

const slots = new WeakMap<ClientConnection, Kept>();

/** What a kept connection must match to carry this request; undefined when its outbound picks afresh each time. */
export function pathKey(ctx: CommandContext, rule: string, outbound: Outbound): string | undefined {
  if (outbound.samePath !== true) return undefined;
  const params = Object.entries(ctx.request.params)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('\n');
  return JSON.stringify([rule, outbound.name, ctx.dest.host, ctx.dest.port, ctx.user ?? null, params]);
}

/** The kept connection when it matches (and is still open), taken out of the slot; any other is closed. */
export function takeOrigin(conn: ClientConnection, key: string, snapshot: Snapshot): Connection | undefined {
  const kept = vacate(conn);
  if (kept === undefined) return undefined;
  const { socket } = kept.origin;
  if (kept.key === key && kept.snapshot === snapshot && !socket.destroyed && !socket.readableEnded && socket.writable) return kept.origin;
  giveUp(kept.origin);
  return undefined;
}

/**
 * Keeps `origin`, whose last response ended cleanly, for the client's next request (closing one
 * kept before). It goes when it idles past its wait, when the origin closes it or sends
 * anything unasked, and when the client connection closes.
 */
export function keepOrigin(conn: ClientConnection, key: string, snapshot: Snapshot, origin: Connection, idleTimeout: number): void {
  const before = vacate(conn);
  if (before) giveUp(before.origin);
  const { socket } = origin;
  const client = conn.socket;
  const gone = (): void => {
    if (slots.get(conn)?.origin !== origin) return;
    vacate(conn);
    giveUp(origin);
  };
  const drop = (): void => {
    socket.setTimeout(0);
    for (const event of WHILE_KEPT) socket.off(event, gone);
    client.off('close', gone);
  };
  slots.set(conn, { key, snapshot, origin, drop });
  socket.setTimeout(idleTimeout > 0 ? Math.min(idleTimeout, KEEP_IDLE_MS) : KEEP_IDLE_MS);
  for (const event of WHILE_KEPT) socket.on(event, gone);
  client.on('close', gone);
  socket.resume();
}

/** What ends a kept connection: nothing is owed between responses, so bytes now are the origin's mistake, a FIN its close. */
const WHILE_KEPT = ['timeout', 'data', 'end', 'close', 'error'] as const;

/**
 * A request that can be sent again whole: an idempotent method (RFC 9110 §9.2.2) with no body,
 * so nothing of it was read that a second send would lack.
 */
export function replayable(req: IncomingMessage): boolean {
  if (!IDEMPOTENT.has(req.method ?? '')) return false;
  if (req.headers['transfer-encoding'] !== undefined) return false;
  const length = req.headers['content-length'];
  return length === undefined || Number(length) === 0;
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);
/** How node's client reports a connection the origin closed (a reset, or a FIN: "socket hang up"); not an origin gone silent. */
const CLOSED_UNDER = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED']);

/**
 * A failure of a kept connection rather than an answer to this request: closed under it, or
 * bytes that did not parse as a response head (node's parser errors, `HPE_*`). A head too
 * large is an answer, refused as on a new connection.
 */
export function keptConnectionFailed(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  return CLOSED_UNDER.has(code) || (code.startsWith('HPE_') && code !== 'HPE_HEADER_OVERFLOW');
}

/** Empties `conn`'s slot, its listeners off the connection it held: that connection, if any, is the caller's now. */
function vacate(conn: ClientConnection): Kept | undefined {
  const kept = slots.get(conn);
  if (kept === undefined) return undefined;
  slots.delete(conn);
  kept.drop();
  return kept;
}
