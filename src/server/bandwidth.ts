// Per-user `bandwidth` (PRODUCT.md "Limits"): one token bucket shared by all of a user's
// connections, both directions. It slows the relay through backpressure only: a reader over
// budget is paused until its debt is paid, so the kernel's socket buffers fill and TCP flow
// control slows the sender. Nothing is dropped and nothing is queued here; only UDP
// datagrams, which no backpressure slows, are dropped by their relay when unpaid (tryTake).

import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { SharedLimits } from './shared-limits.js';

export interface BucketOptions {
  /** Bytes that may pass at once after a quiet spell (default: one second's worth, at least 64 KiB). */
  burst?: number;
  /** Starts with nothing to spend rather than a full burst. */
  empty?: boolean;
  now?: () => number; // ms
}

/** Reads of at most this much are typical (a socket's highWaterMark): the smallest sane burst. */
const MIN_BURST = 64 * 1024;
/** Longest single timer: a long wait is served in steps of at most this. */
const MAX_WAIT_MS = 1_000;
/** setTimeout's own ceiling (a longer delay fires at once): a longer refill is asked again. */
const MAX_TIMER_MS = 0x7fff_ffff;

export class TokenBucket {
  #rate: number; // bytes per second; Infinity once lifted
  #burst: number;
  readonly #fixedBurst: number | undefined;
  readonly #now: () => number;
  #tokens: number;
  #at: number;
  /** Bytes the bucket has been credited with since it was made, at whatever rate was set. */
  #earned = 0;

  constructor(rate: number, opts: BucketOptions = {}) {
    this.#fixedBurst = opts.burst;
    this.#rate = positive(rate);
    this.#burst = this.#burstFor(this.#rate);
    this.#now = opts.now ?? (() => performance.now());
    this.#tokens = opts.empty ? 0 : this.#burst;
    this.#at = this.#now();
  }

  get rate(): number {
    return this.#rate;
  }

  get burst(): number {
    return this.#burst;
  }

  /**
   * A reload changed the user's `bandwidth`: the bucket its connections share goes on at the
   * new rate (undefined: no limit any more), with what it holds or owes now. A reader waiting
   * out a debt owes bytes, not time (paidAt): the rest of its wait goes at the new rate.
   */
  retune(rate: number | undefined): void {
    const lifted = this.#rate === Infinity;
    this.#refill();
    this.#rate = rate === undefined ? Infinity : positive(rate);
    this.#burst = this.#burstFor(this.#rate);
    // Limited again after a spell without a limit: a fresh start, not a debt from before it.
    this.#tokens = lifted ? this.#burst : Math.min(this.#tokens, this.#burst);
  }

  /**
   * Spends `n` bytes that were already read; returns how many ms the reader should now
   * wait (0: go on). Tokens may go negative: bytes in hand are never held back, the debt
   * is paid by waiting, so the long-run rate stays at `rate` whatever the chunk sizes.
   */
  take(n: number): number {
    if (this.#rate === Infinity) return 0;
    this.#refill();
    this.#tokens -= n;
    return this.#tokens >= 0 ? 0 : Math.ceil((-this.#tokens * 1000) / this.#rate);
  }

  /** Nothing left to spend now (a debt stays owed). */
  spendAll(): void {
    this.#refill();
    this.#tokens = Math.min(this.#tokens, 0);
  }

  /**
   * For a datagram, which no backpressure can slow: spends `n` bytes while the bucket owes
   * less than one burst, else spends nothing and returns false, and the caller drops it. The
   * user's TCP readers then wait out what it spent: readers at the limit keep the bucket just
   * below empty, and a datagram that waited for a positive balance would almost never pass.
   * Datagrams alone run the debt to one burst, then pass at the rate.
   */
  tryTake(n: number): boolean {
    if (this.#rate === Infinity) return true;
    this.#refill();
    if (this.#tokens <= -this.#burst) return false;
    this.#tokens -= n;
    return true;
  }

  /**
   * Gives back `n` bytes tryTake spent on a datagram that was then dropped before it left:
   * the bucket stands as if they had never been spent (the cap at the burst is where the
   * refill would have stopped without them too).
   */
  refund(n: number): void {
    if (this.#rate === Infinity) return;
    this.#refill();
    this.#tokens = Math.min(this.#burst, this.#tokens + n);
  }

  /**
   * Where the debt stands now, on the scale of what the bucket is credited with: once it
   * has been credited this much (msUntil), everything spent so far is paid for.
   */
  paidAt(): number {
    this.#refill();
    return this.#earned + Math.max(0, -this.#tokens);
  }

  /** How long until the bucket has been credited with `mark` (paidAt) at its rate now; 0: it has, or no limit. */
  msUntil(mark: number): number {
    if (this.#rate === Infinity) return 0;
    this.#refill();
    return Math.max(0, Math.ceil(((mark - this.#earned) * 1000) / this.#rate));
  }

  /** How long until the bucket holds a full burst again (0: it does, or there is no limit). */
  msUntilFull(): number {
    if (this.#rate === Infinity) return 0;
    this.#refill();
    return Math.max(0, Math.ceil(((this.#burst - this.#tokens) * 1000) / this.#rate));
  }

  #refill(): void {
    const now = this.#now();
    if (this.#rate !== Infinity) {
      const credit = ((now - this.#at) * this.#rate) / 1000;
      this.#tokens = Math.min(this.#burst, this.#tokens + credit);
      this.#earned += credit;
    }
    this.#at = now;
  }

  #burstFor(rate: number): number {
    return this.#fixedBurst ?? Math.max(rate, MIN_BURST);
  }
}

interface Held {
  bucket: TokenBucket;
  /** The user's `bandwidth`; undefined once a reload lifted it. */
  rate: number | undefined;
  /** Processes of the instance relaying this user's connections, this one included: each has rate / share. */
  share: number;
  users: number;
  /** While no connection holds the bucket: the timer that forgets it once full. */
  forget: NodeJS.Timeout | undefined;
}

function positive(rate: number): number {
  if (!(rate > 0)) throw new RangeError(`bandwidth must be positive, got ${rate}`);
  return rate;
}

/**
 * One bucket per user, shared while any connection of that user holds it. A reload that
 * changes the user's rate retunes that bucket (retune below; acquire at another rate does
 * too): a second bucket at the new rate beside the open connections' one would let the user
 * through at both rates together. A bucket outlives the user's last connection until it has
 * refilled: forgotten at once, it would hand the next connection a full burst whatever the
 * last one spent, and short transfers one after another would all go at full speed.
 */
export class BandwidthLimits {
  readonly #buckets = new Map<string, Held>();
  readonly #shared: SharedLimits | undefined;

  /**
   * `shared`: in a cluster worker, the instance's ledger. A user's bandwidth is split evenly
   * among the workers relaying that user's connections, and a worker that joins them starts
   * with an empty bucket: the user's burst was the first one's to spend.
   */
  constructor(shared?: SharedLimits) {
    this.#shared = shared;
    shared?.onBandwidthShare((user, holders) => this.#setShare(user, holders));
  }

  /** True while a connection of `user` holds the user's bucket here. */
  holding(user: string): boolean {
    return (this.#buckets.get(user)?.users ?? 0) > 0;
  }

  /**
   * The user's bucket for one connection; call `release` once when the connection ends.
   * `others`: how many other processes of the instance hold a bucket of this user's now.
   */
  acquire(user: string, rate: number, others = 0): { bucket: TokenBucket; release: () => void } {
    let entry = this.#buckets.get(user);
    if (entry === undefined) {
      const share = others + 1;
      entry = { bucket: new TokenBucket(rate / share, { empty: others > 0 }), rate, share, users: 0, forget: undefined };
      this.#buckets.set(user, entry);
    } else if (entry.rate !== rate || (entry.users === 0 && entry.share !== others + 1)) {
      entry.rate = rate;
      if (entry.users === 0) entry.share = others + 1;
      entry.bucket.retune(rate / entry.share);
    }
    // Back from rest while other processes relay the user: what it refilled meanwhile they
    // spent at the whole rate, as a newcomer's burst would be spent twice.
    if (entry.users === 0 && others > 0) entry.bucket.spendAll();
    const held = entry;
    if (held.forget !== undefined) clearTimeout(held.forget);
    held.forget = undefined;
    if (held.users++ === 0) this.#shared?.holdBandwidth(user, true);
    let released = false;
    return {
      bucket: held.bucket,
      release: () => {
        if (released) return;
        released = true;
        if (--held.users > 0) return;
        this.#shared?.holdBandwidth(user, false);
        this.#rest(user, held);
      },
    };
  }

  /** The ledger's count of the workers relaying `user`'s connections changed: this one's bucket takes its share. */
  #setShare(user: string, holders: number): void {
    const held = this.#buckets.get(user);
    if (held === undefined || held.users === 0 || held.share === holders) return;
    held.share = holders;
    if (held.rate !== undefined) held.bucket.retune(held.rate / holders);
  }

  /** No connection holds `held` any more: it goes once full (a fresh bucket is the same then). */
  #rest(user: string, held: Held): void {
    const ms = held.bucket.msUntilFull();
    if (ms === 0) {
      this.#buckets.delete(user);
      return;
    }
    // Asked again when the timer fires: a reload may have changed the rate meanwhile.
    held.forget = setTimeout(() => {
      held.forget = undefined;
      if (held.users === 0) this.#rest(user, held);
    }, Math.min(ms, MAX_TIMER_MS));
    held.forget.unref();
  }

  /**
   * A reload: every user's bucket takes the user's `bandwidth` in `users` (none: no limit now).
   * A user the reload removed keeps the limit their open connections had: gone from the
   * config is no reason to go faster.
   */
  retune(users: ReadonlyMap<string, { readonly bandwidth?: number | undefined }>): void {
    for (const [user, held] of this.#buckets) {
      const cfg = users.get(user);
      if (cfg === undefined || cfg.bandwidth === held.rate) continue;
      held.rate = cfg.bandwidth;
      held.bucket.retune(cfg.bandwidth === undefined ? undefined : cfg.bandwidth / held.share);
    }
  }

  /** Users with a bucket now, held or refilling (for tests and metrics). */
  get size(): number {
    return this.#buckets.size;
  }
}

/**
 * A connection's idle timer (its socket's setTimeout), held off while any of its readers waits
 * out a debt: the reader has just moved data and will move more once paid, so the connection is
 * moving data at its user's limit, not idle. A debt can outlast idle_timeout when the user's
 * other connections keep the bucket owing. The timer starts afresh once no reader owes.
 */
export class IdleHold {
  readonly #socket: Socket;
  readonly #ms: number;
  #owing = 0;

  constructor(socket: Socket, ms: number) {
    this.#socket = socket;
    this.#ms = ms;
  }

  owe(): void {
    if (this.#owing++ === 0 && this.#ms > 0) this.#socket.setTimeout(0);
  }

  paid(): void {
    // A closed socket's timer stays off: a 'timeout' after the end would fail a finished relay.
    if (--this.#owing === 0 && this.#ms > 0 && !this.#socket.destroyed) this.#socket.setTimeout(this.#ms);
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
 * (Readable emits 'resume' just before it starts flowing again). `idle`, when given, is held
 * off while the debt is waited out. The debt is waited out in bytes the bucket is credited
 * with, not in time: a reload that raises or lifts the rate shortens the wait under way (within
 * a step of MAX_WAIT_MS). Returns a function that detaches the limiter (idempotent).
 */
export function limitReader(src: Readable, dest: Writable, bucket: TokenBucket, idle?: IdleHold): () => void {
  let timer: NodeJS.Timeout | undefined;
  let mark = 0; // the bucket's paidAt() at which this reader's last chunk is paid for
  const settle = (): void => {
    timer = undefined;
    idle?.paid();
  };
  const resume = (): void => {
    const wait = bucket.msUntil(mark);
    if (wait > 0 && !src.destroyed) return void (timer = setTimeout(resume, Math.min(wait, MAX_WAIT_MS)));
    settle();
    if (!src.destroyed && !dest.writableNeedDrain) src.resume(); // else the pipe resumes it on 'drain'
  };
  const onData = (chunk: Buffer): void => {
    const wait = bucket.take(chunk.length);
    if (wait === 0) return;
    src.pause();
    mark = bucket.paidAt();
    if (timer !== undefined) clearTimeout(timer);
    else idle?.owe();
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
    settle();
    if (!src.destroyed && !dest.writableNeedDrain) src.resume();
  };
  src.on('data', onData);
  src.on('resume', onResume);
  src.once('close', detach);
  return detach;
}
