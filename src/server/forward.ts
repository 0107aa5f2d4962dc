// One direction of the relay, src → dest, reading into buffers the gateway owns (read-into.ts)
// instead of a freshly allocated chunk per read pushed through a stream pipe. Each read is
// written on at once; a write the kernel took whole leaves the buffer free for the next read,
// a write that waits keeps the buffer and pauses the reader until it is flushed (backpressure,
// as pipe() gives it). Falls back to pipe() where a socket cannot read into our buffers.
//
// Three tiers, by what a direction's reads bring: small reads land in one shared buffer and are
// copied out (cheap below COPY_LIMIT); a direction whose reads are larger reads into a 64 KiB
// buffer of its own (many streams at once); one that fills that reads into 1 MiB (a fast single
// stream). A direction moves down again when its reads shrink.

import type { Socket } from 'node:net';
import { isPlainTcp, readInto, sawEnd } from './read-into.js';

/** Every direction reads into this between bursts: what lands in it is copied out at once. */
const SHARED_SIZE = 64 * 1024;
/**
 * A copy this large is a buffer of its own (Node pools only smaller ones), about 4 µs whatever
 * its size: a direction whose reads come this large twice running reads into a buffer of its own.
 */
const COPY_LIMIT = Buffer.poolSize >>> 1;
/** Full reads in a row that move a direction up a tier: one large object is not a stream. */
const BUSY_AFTER = 2;

/** Own read buffers of one size: a bounded number out at once, a few kept free for reuse. */
class OwnBuffers {
  readonly size: number;
  readonly #limit: number;
  readonly #keepFree: number;
  readonly #free: Buffer[] = [];
  out = 0;

  constructor(size: number, limit: number, keepFree: number) {
    this.size = size;
    this.#limit = limit;
    this.#keepFree = keepFree;
  }

  /** A buffer, or undefined when the limit is reached (the direction copies out of the shared one). */
  take(): Buffer | undefined {
    if (this.out >= this.#limit) return undefined;
    this.out++;
    return this.#free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  /** `reuse`: no write refers to it any more. A buffer a write may still refer to is only counted back. */
  give(buffer: Buffer, reuse: boolean): void {
    this.out--;
    if (reuse && this.#free.length < this.#keepFree) this.#free.push(buffer);
  }
}

/**
 * Many streams at once (crawler traffic): a 64 KiB buffer for each direction whose reads are
 * too large to copy cheaply, up to 64 MiB in all. One stream that fills those: a 1 MiB buffer,
 * fewer and larger reads, up to 64 MiB in all.
 */
const mid = new OwnBuffers(SHARED_SIZE, 1024, 64);
const big = new OwnBuffers(1024 * 1024, 64, 8);

const shared: Buffer = Buffer.allocUnsafeSlow(SHARED_SIZE);

function tierOf(buffer: Buffer): OwnBuffers {
  return buffer.length === big.size ? big : mid;
}

/** Own buffers out now (tests: every relay gives back what it took). */
export function ownBuffersOut(): number {
  return mid.out + big.out;
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
  let current: Buffer = shared; // what the next read lands in: shared, or an own buffer (mid or big)
  let lent: Buffer | undefined; // an own buffer a pending write still refers to
  let lentAt = 0; // which write that is
  let written = 0; // writes of reads so far, and of those, flushed: writes complete in order
  let flushedCount = 0;
  let last = 0; // bytes of the last read
  let streak = 0; // reads in a row that filled the buffer they landed in (shared: that were too large to copy cheaply)
  let waiting = false; // paused until dest flushes
  let released = false;

  const flushed = (): void => {
    if (released) return;
    flushedCount++;
    if (lent && flushedCount >= lentAt) {
      tierOf(lent).give(lent, true);
      lent = undefined;
    }
    if (waiting && flushedCount === written) {
      waiting = false;
      if (!src.destroyed) src.resume();
    }
  };
  const onRead = (n: number, buffer: Buffer): boolean => {
    last = n;
    streak = (buffer === shared ? n >= COPY_LIMIT : n === buffer.length) ? streak + 1 : 0;
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
  /** Leaves the own buffer `current` for the shared one (or `to`), giving it back unless a write has it. */
  const leave = (to: Buffer | undefined): void => {
    if (current !== lent) tierOf(current).give(current, true);
    current = to ?? shared;
    streak = 0;
  };
  const next = (): Buffer => {
    if (current === shared) {
      if (streak >= BUSY_AFTER) {
        current = mid.take() ?? shared;
        streak = 0;
      }
    } else if (lent === current) {
      // The write has it: the next read goes into another of its size while this one drains
      // (the reader is paused until it has), or into the shared one when none is left.
      // Falling back to the shared buffer alone made every busy direction whose writes wait
      // (many streams to slow readers) copy most of its reads, each copy an allocation.
      current = tierOf(current).take() ?? shared;
    } else if (current.length === SHARED_SIZE) {
      if (streak >= BUSY_AFTER) {
        const larger = big.take(); // none left: it stays on this one
        if (larger) leave(larger);
      } else if (last < COPY_LIMIT) leave(undefined); // small reads again: the burst is over
    } else if (last < SHARED_SIZE) leave(mid.take()); // less than a mid buffer holds: down a tier
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
    if (current !== shared && current !== lent) tierOf(current).give(current, true);
    if (lent) tierOf(lent).give(lent, false);
  };
}

function noop(): void {}
