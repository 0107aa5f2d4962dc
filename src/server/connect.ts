import { Rep } from '../errors.js';
import { boundOf, type CommandContext } from './context.js';
import { relay } from './relay.js';
import { route } from './route.js';

/** CONNECT (RFC 1928 §4): route, open the outbound, reply with its real local address, relay. */
export async function handleConnect(ctx: CommandContext): Promise<void> {
  const { client, hs, record, snapshot } = ctx;
  const { decision, outbound } = await route(ctx, 'connect');
  const started = performance.now();
  let conn;
  try {
    conn = await outbound.connect(ctx.dest, { signal: ctx.signal, log: ctx.log, sessionKey: ctx.sessionKey, resolved: decision.resolved });
  } catch (err) {
    ctx.metrics.outboundRequests.inc({ outbound: outbound.name, result: 'fail' });
    throw err;
  } finally {
    ctx.metrics.connectSeconds.observe({ outbound: outbound.name }, (performance.now() - started) / 1000);
  }
  ctx.metrics.outboundRequests.inc({ outbound: outbound.name, result: 'ok' });
  if (conn.member) record.member = conn.member;
  try {
    if (client.destroyed) {
      conn.socket.destroy();
      return;
    }
    client.write(hs.reply(Rep.SUCCEEDED, conn.bound ?? boundOf(conn.socket)));
    if (conn.head) client.write(conn.head);
    record.rep = Rep.SUCCEEDED;
    // Payload the client pipelined behind its request goes first (RFC 1928 allows no gap).
    const result = await relay(client, conn.socket, { idleTimeout: snapshot.config.limits.idle_timeout, early: hs.remainder() });
    record.up = result.up;
    record.down = result.down + (conn.head?.length ?? 0);
    if (result.reason !== 'closed') record.error = result.error?.message ?? result.reason;
  } finally {
    conn.release?.();
  }
}
