import type { Socket } from 'node:net';
import { GatewayError, Rep } from '../errors.js';
import type { BindHandle, Destination, Outbound } from '../outbound/types.js';
import type { Decision } from '../router/types.js';
import { CLIENT_LEFT, type CommandContext } from './context.js';
import { countAttempt, outboundContext } from './outbound-context.js';
import { relay } from './relay.js';
import { route } from './route.js';

/**
 * BIND (RFC 1928 §4): listen, first reply with where; wait (bounded by bind_timeout) for
 * the one peer, second reply with who; then relay. A wait that runs out gets 0x06.
 */
export async function handleBind(ctx: CommandContext): Promise<void> {
  const { client, front, record, snapshot } = ctx;
  const { decision, outbound } = await route(ctx, 'bind');
  const handle = await open(ctx, decision, outbound);
  try {
    if (client.destroyed) {
      record.error ??= CLIENT_LEFT;
      return;
    }
    front.granted(() => handle.listening);
    record.rep = Rep.SUCCEEDED;
    const left = new AbortController();
    const watch = watchClient(client, () => left.abort());
    const got = await waitForPeer(handle, [ctx.signal, left.signal], snapshot.config.limits.bind_timeout);
    const early = Buffer.concat([front.remainder(), watch.stop()]);
    if (got === 'aborted' || client.destroyed) {
      if (typeof got === 'object' && !(got instanceof Error)) got.socket.destroy(); // a peer nobody will read
      // A FIN ends `left`, a reset the connection's own signal: either way the client left
      // (a gateway stop or an admin kill has said so already).
      record.error ??= 'client left before the peer connected';
      return;
    }
    if (got === 'timeout' || got instanceof Error) {
      const err = got === 'timeout' ? BIND_TIMEOUT : got;
      record.error = err.message;
      record.rep = front.refused(err); // the second reply (RFC 1928 §4, SOCKS4 BIND alike)
      return;
    }
    front.granted(() => got.peer);
    ctx.attach(got.socket);
    if (got.head) client.write(got.head);
    // Bytes pipelined behind the request or sent while waiting go to the peer first.
    const result = await relay(client, got.socket, { idleTimeout: snapshot.config.limits.idle_timeout, early, throttle: ctx.limits.throttle });
    record.up = result.up;
    record.down = result.down + (got.head?.length ?? 0); // the peer's first bytes, as CONNECT counts them
    if (result.reason !== 'closed') record.error = result.error?.message ?? result.reason;
  } finally {
    handle.close();
  }
}

/**
 * The outbound's BIND, if it has one (direct listens itself; an upstream that speaks SOCKS
 * asks its own); one without it gets 0x07. It gets the rules' answer for DST.ADDR, as a
 * CONNECT does, so a name is not looked up twice.
 */
async function open(ctx: CommandContext, decision: Decision, outbound: Outbound): Promise<BindHandle> {
  const bind = outbound.bind;
  if (!bind) throw new GatewayError('GW_ERR_BIND_UNSUPPORTED', `outbound "${outbound.name}" cannot BIND`, Rep.COMMAND_NOT_SUPPORTED);
  const octx = outboundContext(ctx);
  if (decision.resolved) octx.resolved = decision.resolved;
  if (decision.unresolved !== undefined) octx.unresolved = decision.unresolved;
  // Counted as a CONNECT's dial is, up to the first reply: the listener is open (here or at the upstream).
  const started = performance.now();
  try {
    const handle = await bind.call(outbound, ctx.dest, octx);
    countAttempt(ctx, outbound.name, started, true);
    return handle;
  } catch (err) {
    countAttempt(ctx, outbound.name, started, false);
    throw err;
  } finally {
    // A pool names the member it tried last: the one that carries the BIND, or that refused it.
    if (octx.member !== undefined) ctx.record.member = octx.member;
  }
}

const BIND_TIMEOUT = new GatewayError('GW_ERR_BIND_TIMEOUT', 'bind timeout', Rep.TTL_EXPIRED);

type Waited = { socket: Socket; peer: Destination; head?: Buffer } | 'timeout' | 'aborted' | Error;

/** Bytes a client may send before its peer arrives; beyond this it is not read until then. */
const MAX_EARLY_BYTES = 64 * 1024;

/**
 * Reads the client while it waits for its peer: a paused socket notices neither a FIN nor,
 * once bytes are queued, a reset, and the listener would stay open until bind_timeout.
 * What it sends meanwhile is kept (bounded) for the peer.
 */
function watchClient(client: Socket, onLeave: () => void): { stop(): Buffer } {
  const early: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer): void => {
    early.push(chunk);
    size += chunk.length;
    if (size >= MAX_EARLY_BYTES) client.pause();
  };
  client.on('data', onData);
  client.once('end', onLeave);
  client.resume();
  return {
    stop(): Buffer {
      client.pause();
      client.off('data', onData);
      client.off('end', onLeave);
      return Buffer.concat(early);
    },
  };
}

function waitForPeer(handle: BindHandle, signals: AbortSignal[], ms: number): Promise<Waited> {
  return new Promise((resolve) => {
    let finished = false;
    const finish = (v: Waited): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      for (const s of signals) s.removeEventListener('abort', onAbort);
      resolve(v);
    };
    const onAbort = (): void => finish('aborted');
    const timer = setTimeout(() => finish('timeout'), ms);
    for (const s of signals) s.addEventListener('abort', onAbort, { once: true });
    if (signals.some((s) => s.aborted)) onAbort();
    handle.accepted().then(
      (peer) => {
        // A peer that arrives after we gave up is not ours to keep.
        if (finished || signals.some((s) => s.aborted)) peer.socket.destroy();
        finish(peer);
      },
      (err: unknown) => finish(err instanceof Error ? err : new Error(String(err))),
    );
  });
}
