// One direction of the relay, src → dest, reading into buffers the gateway owns (read-into.ts)
// instead of a freshly allocated chunk per read pushed through a stream pipe. Each read is
// written on at once; a write the kernel took whole leaves the buffer free for the next read,
// a write that waits keeps the buffer and pauses the reader until it is flushed (backpressure,
// as pipe() gives it). Falls back to pipe() where a socket cannot read into our buffers.

import type { Socket } from 'node:net';
import { isPlainTcp, readInto, sawEnd } from './read-into.js';

/** Every direction reads into this between bursts: what lands in it is copied out at once. */
const SHARED_SIZE = 64 * 1024;
/**
 * A direction whose reads filled the shared buffer twice running gets one of these to itself,
 * and keeps it while its reads bring at least SHARED_SIZE: fewer, larger reads, no copies.
 */
const OWN_SIZE = 1024 * 1024;
/** Own buffers out at once, gateway-wide (64 MiB). Past that, busy directions copy out of the shared one. */
const OWN_LIMIT = 64;
/** Free own buffers kept for the next busy direction. */
const KEEP_FREE = 8;
/** Full reads of the shared buffer in a row that make a direction busy: one 64 KiB object is not a stream. */
const BUSY_AFTER = 2;

const shared: Buffer = Buffer.allocUnsafeSlow(SHARED_SIZE);
const free: Buffer[] = [];
let out = 0;

function takeOwn(): Buffer {
  if (out >= OWN_LIMIT) return shared;
  out++;
  return free.pop() ?? Buffer.allocUnsafeSlow(OWN_SIZE);
}

/** `reuse`: no write refers to it any more. A buffer a write may still refer to is only counted back. */
function giveOwn(buffer: Buffer, reuse: boolean): void {
  out--;
  if (reuse && free.length < KEEP_FREE) free.push(buffer);
}

/** Own buffers out now (tests: every relay gives back what it took). */
export function ownBuffersOut(): number {
  return out;
}

/**
 * Starts moving src's bytes to dest: `first` (bytes read before the relay), then what src's
 * stream already holds, then every read. An end from src is passed on as dest.end() once all
 * of it is written. Returns the function that gives back the direction's buffers: call it when
 * both sockets are closed.
 */
export function forward(src: Socket, dest: Socket, first: Buffer): () => void {
  if (first.length > 0) dest.write(first);
  if (sawEnd(src)) {
    // EOF already in: nothing more will be read, pipe hands over what the stream holds and the end.
    src.pipe(dest);
    return noop;
  }
  for (let held = src.read() as Buffer | null; held !== null; held = src.read() as Buffer | null) dest.write(held);
  let current: Buffer = shared; // what the next read lands in
  let lent: Buffer | undefined; // an own buffer a pending write still refers to
  let lentAt = 0; // which write that is
  let written = 0; // writes of reads so far, and of those, flushed: writes complete in order
  let flushedCount = 0;
  let last = 0; // bytes of the last read
  let streak = 0; // full reads of the shared buffer in a row
  let waiting = false; // paused until dest flushes
  let released = false;

  const flushed = (): void => {
    if (released) return;
    flushedCount++;
    if (lent && flushedCount >= lentAt) {
      giveOwn(lent, true);
      lent = undefined;
    }
    if (waiting && flushedCount === written) {
      waiting = false;
      if (!src.destroyed) src.resume();
    }
  };
  const onRead = (n: number, buffer: Buffer): boolean => {
    last = n;
    streak = buffer === shared ? (n === SHARED_SIZE ? streak + 1 : 0) : streak;
    written++;
    // The shared buffer is everyone's between reads: its bytes are copied before anyone reads again.
    dest.write(buffer === shared ? Buffer.from(buffer.subarray(0, n)) : buffer.subarray(0, n), flushed);
    if (dest.writableLength === 0) return true; // the kernel took it all: the buffer is free again
    if (buffer !== shared) {
      lent = buffer;
      lentAt = written;
    }
    waiting = true;
    return false;
  };
  const next = (): Buffer => {
    if (lent === current) current = shared; // the write has it; a new one is earned by the next full reads
    else if (current === shared) current = streak >= BUSY_AFTER && !lent ? takeOwn() : shared;
    else if (last < SHARED_SIZE) {
      giveOwn(current, true); // less came than the shared buffer holds: the burst is over
      current = shared;
      streak = 0;
    }
    return current;
  };
  // Only into a plain TCP socket: a TLS one may still hold the bytes of a write it reported done.
  if (!isPlainTcp(dest) || !readInto(src, shared, onRead, next)) {
    src.pipe(dest);
    return noop;
  }
  src.on('end', () => dest.end()); // emitted once (see relay.ts on once())
  src.resume();
  return () => {
    if (released) return;
    released = true;
    // Both sockets are closed: no read will land in `current`, and libuv has let go of any write.
    if (current !== shared && current !== lent) giveOwn(current, true);
    if (lent) giveOwn(lent, false);
  };
}

function noop(): void {}
