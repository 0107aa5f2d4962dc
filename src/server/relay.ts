import type { Socket } from 'node:net';
import { IdleHold, limitReader, type TokenBucket } from './bandwidth.js';
import { EMPTY } from '../protocol/constants.js';
import { forward } from './forward.js';

/**
 * Bytes taken out of `socket` so far: what it read less what its stream still holds. The
 * byte counts of every relayed request are differences of this (and of bytesWritten), taken
 * from where the request's own bytes start: an upstream's handshake is before that.
 */
export function consumed(socket: Socket): number {
  return socket.bytesRead - socket.readableLength;
}

export interface RelayOptions {
  /** Both directions silent this long → both sockets destroyed. 0 = never. */
  idleTimeout: number;
  /** Bytes the client sent behind its request, before the relay started: they go first. */
  early?: Buffer;
  /** Per-user `bandwidth`: each chunk read either way is charged to it; a reader in debt is paused. */
  throttle?: TokenBucket | undefined;
}

export interface RelayResult {
  up: number; // bytes client → remote
  down: number; // bytes remote → client
  reason: 'closed' | 'idle' | 'error';
  error?: Error;
}

/**
 * The one relay: bytes both ways with backpressure (a reader pauses while its writer cannot
 * take more: forward.ts, or pipe for a bandwidth-limited user) and half-close (an end from
 * one side is passed on as FIN while the other direction keeps flowing). Resolves once both
 * sockets are closed.
 */
export function relay(client: Socket, remote: Socket, opts: RelayOptions): Promise<RelayResult> {
  return new Promise((resolve) => start(client, remote, opts, resolve));
}

/**
 * The relay's body, a function of its own: the listeners it leaves on the sockets close over
 * its scope, which must not hold `opts`: its `early` (and with it the whole read the bytes came
 * in, up to 64 KiB) would stay reachable for the life of the relay.
 */
function start(client: Socket, remote: Socket, opts: RelayOptions, resolve: (result: RelayResult) => void): void {
  const result: RelayResult = { up: 0, down: 0, reason: 'closed' };
  // Half-close needs both sides to stay writable after their reader ends.
  client.allowHalfOpen = true;
  remote.allowHalfOpen = true;
  // Counted from the sockets' own totals, not a second 'data' listener per chunk: what the
  // relay passes on is what each socket read from now on, plus what its stream already held
  // (read before the relay, not yet consumed), less what is left unconsumed at the end.
  const early = opts.early ?? EMPTY;
  const { idleTimeout } = opts; // what the listeners read: not `opts`, nor `early`
  const upFrom = consumed(client) - early.length;
  const downFrom = consumed(remote);

  let open = 2;
  let releaseUp = noop;
  let releaseDown = noop;
  // A socket destroyed just before the relay is `closed` at once but emits 'close' later:
  // both paths below report it, and it must count once.
  let clientCounted = false;
  let remoteCounted = false;
  const onClose = (closed: Socket, other: Socket): void => {
    // Closed without its FIN (destroyed, reset): nothing more will come from
    // it, and nothing we hold for it can be delivered: cut the other side too.
    if (!closed.readableEnded) other.destroy();
    if (--open > 0) return;
    releaseUp();
    releaseDown();
    if (idleTimeout > 0) client.setTimeout(0);
    result.up = consumed(client) - upFrom;
    result.down = consumed(remote) - downFrom;
    resolve(result);
  };
  const onClientClose = (): void => {
    if (clientCounted) return;
    clientCounted = true;
    onClose(client, remote);
  };
  const onRemoteClose = (): void => {
    if (remoteCounted) return;
    remoteCounted = true;
    onClose(remote, client);
  };
  const fail = (reason: 'idle' | 'error', err?: Error, failed?: Socket): void => {
    if (result.reason === 'closed') {
      result.reason = reason;
      if (err) result.error = err;
    }
    // A side that failed before its FIN (reset, broken pipe) cut its stream short: its peer
    // is told so by a reset too. A FIN would pass a truncated transfer off as a whole one.
    if (failed !== undefined && !failed.readableEnded) resetSocket(failed === client ? remote : client);
    client.destroy();
    remote.destroy();
  };
  // One listener for both sockets: an emitter calls it with itself as `this`.
  const onError = function (this: Socket, err: Error): void {
    fail('error', err, this);
  };
  // on(), not once(): 'close' comes once anyway, and once() wraps each listener in a bound
  // function and a state object held for the life of the relay.
  client.on('close', onClientClose);
  remote.on('close', onRemoteClose);
  client.on('error', onError);
  remote.on('error', onError);
  // One idle timer, the client's: its timeout counts reads and writes, and every byte read
  // on either socket is written to the other, so the client socket sees both directions.
  // A listener of our own rather than setTimeout's callback argument, which adds it with once().
  if (idleTimeout > 0) {
    client.on('timeout', () => fail('idle'));
    client.setTimeout(idleTimeout);
  }
  if (opts.throttle) {
    // A limited relay pipes: the limiter charges each chunk as its stream emits it.
    throttle(client, remote, opts.throttle, new IdleHold(client, idleTimeout));
    // A client whose FIN came with its payload may have emitted 'end' already, and unshift()
    // after 'end' is an error: then the bytes go straight to the remote, ahead of the FIN,
    // charged all the same: the debt is waited out by the user's next reads, this remote's
    // among them.
    if (early.length > 0 && client.readableEnded) writeAhead(remote, early, opts.throttle);
    else if (early.length > 0) client.unshift(early);
    client.pipe(remote);
    remote.pipe(client);
    // A side that ended before the relay started (pipelined EOF) still has its end passed on.
    if (client.readableEnded) remote.end();
    if (remote.readableEnded) client.end();
  } else {
    // Payload the client pipelined behind its request goes first (RFC 1928 allows no gap).
    releaseUp = forward(client, remote, early);
    releaseDown = forward(remote, client, EMPTY);
  }
  // Already-closed sockets never emit 'close' again.
  if (client.closed) onClientClose();
  if (remote.closed) onRemoteClose();
}

function noop(): void {}

/**
 * Bytes read before the relay's readers began (with an upstream's reply, with an origin's 101;
 * a client's payload behind a FIN), written to `to` ahead of the relay: charged to the user's
 * bucket as a read is, the debt waited out by the user's next reads.
 */
export function writeAhead(to: Socket, bytes: Buffer, throttle: TokenBucket | undefined): void {
  throttle?.take(bytes.length);
  to.write(bytes);
}

/**
 * Closes `socket` with a TCP reset (RST); one that cannot (TLS, already closed) is destroyed. So
 * is one already ended: while its shutdown is in flight libuv refuses the reset (EINVAL), and
 * the socket would then never emit 'close'.
 */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded) return void socket.destroy();
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy(); // not on a TCP handle (a TLS upstream): ERR_INVALID_HANDLE_TYPE, thrown before anything changed
  }
}

/**
 * Both readers charge one bucket (the user's, shared with their other connections) and pause
 * while it is in debt: TCP flow control then slows the senders, and nothing waits here beyond
 * the socket buffers. A reader waiting out its debt holds the idle timer off. Each limiter
 * detaches when its reader closes.
 */
function throttle(client: Socket, remote: Socket, bucket: TokenBucket, idle: IdleHold): void {
  limitReader(client, remote, bucket, idle);
  limitReader(remote, client, bucket, idle);
}
