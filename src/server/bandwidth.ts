// Per-user `bandwidth` (PRODUCT.md "Limits"): one token bucket shared by all of a user's
// connections, both directions. It slows the relay through backpressure only: a reader over
// budget is paused until its debt is paid, so the kernel's socket buffers fill and TCP flow
// control slows the sender. Nothing is dropped and nothing is queued here.

import type { Readable, Writable } from 'node:stream';

export interface BucketOptions {
  /** Bytes that may pass at once after a quiet spell (default: one second's worth, at least 64 KiB). */
  burst?: number;
  now?: () => number; // ms
}

/** Reads of at most this much are typical (a socket's highWaterMark): the smallest sane burst. */
const MIN_BURST = 64 * 1024;
/** Longest single timer: a long wait is served in steps of at most this. */
const MAX_WAIT_MS = 1_000;

export class TokenBucket {
  readonly rate: number; // bytes per second
  readonly burst: number;
  readonly #now: () => number;
  #tokens: number;
  #at: number;

  constructor(rate: number, opts: BucketOptions = {}) {
    if (!(rate > 0)) throw new RangeError(`bandwidth must be positive, got ${rate}`);
    this.rate = rate;
    this.burst = opts.burst ?? Math.max(rate, MIN_BURST);
    this.#now = opts.now ?? (() => performance.now());
    this.#tokens = this.burst;
    this.#at = this.#now();
  }

  /**
   * Spends `n` bytes that were already read; returns how many ms the reader should now
   * wait (0: go on). Tokens may go negative: bytes in hand are never held back, the debt
   * is paid by waiting, so the long-run rate stays at `rate` whatever the chunk sizes.
   */
  take(n: number): number {
    const now = this.#now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.rate) / 1000);
    this.#at = now;
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.rate);
  }
}

/**
 * Buckets by user, shared while any connection of that user holds one. A user's rate is
 * read from the config each time a connection starts; a changed rate starts a new bucket.
 */
export class BandwidthLimits {
  readonly #buckets = new Map<string, { bucket: TokenBucket; users: number }>();

  /** The user's bucket for one connection; call `release` once when the connection ends. */
  acquire(user: string, rate: number): { bucket: TokenBucket; release: () => void } {
    let entry = this.#buckets.get(user);
    if (entry === undefined || entry.bucket.rate !== rate) {
      entry = { bucket: new TokenBucket(rate), users: 0 };
      this.#buckets.set(user, entry);
    }
    const held = entry;
    held.users++;
    let released = false;
    return {
      bucket: held.bucket,
      release: () => {
        if (released) return;
        released = true;
        if (--held.users === 0 && this.#buckets.get(user) === held) this.#buckets.delete(user);
      },
    };
  }

  /** Users with a bucket now (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * Charges every chunk `src` emits to `bucket` and pauses `src` while its own chunk is unpaid.
 * The wait take() returns covers the whole debt, this chunk included: once it is over, `src`
 * may read again without asking the bucket, which the user's other connections keep in debt:
 * asking it on waking would put this reader behind every chunk read since, and one
 * connection could be starved for as long as another kept reading.
 * Works beside `src.pipe(dest)`: when the pipe paused `src` for a full `dest`, the timer
 * leaves it to the pipe's 'drain'. The pipe resumes its source on every 'drain' of `dest`,
 * whoever paused it; while in debt such a resume is taken back before anything flows
 * (Readable emits 'resume' just before it starts flowing again). Returns a function that
 * detaches the limiter (idempotent).
 */
export function limitReader(src: Readable, dest: Writable, bucket: TokenBucket): () => void {
  let timer: NodeJS.Timeout | undefined;
  let until = 0; // performance.now() at which this reader's last chunk is paid for
  const resume = (): void => {
    timer = undefined;
    if (src.destroyed) return;
    const wait = until - performance.now();
    if (wait > 0) timer = setTimeout(resume, Math.min(wait, MAX_WAIT_MS));
    else if (!dest.writableNeedDrain) src.resume(); // else the pipe resumes it on 'drain'
  };
  const onData = (chunk: Buffer): void => {
    const wait = bucket.take(chunk.length);
    if (wait === 0) return;
    src.pause();
    until = performance.now() + wait;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(resume, Math.min(wait, MAX_WAIT_MS));
  };
  const onResume = (): void => {
    if (timer !== undefined) src.pause();
  };
  const detach = (): void => {
    src.off('data', onData);
    src.off('resume', onResume);
    src.off('close', detach);
    if (timer === undefined) return;
    clearTimeout(timer);
    timer = undefined;
    if (!src.destroyed && !dest.writableNeedDrain) src.resume();
  };
  src.on('data', onData);
  src.on('resume', onResume);
  src.once('close', detach);
  return detach;
}
