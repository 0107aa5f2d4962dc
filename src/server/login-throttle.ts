// Password guessing (PRODUCT.md "Limits", `auth_failures`): per client address, failures
// within `window` are answered after a delay that doubles each time; at `max` every login
// from that address is refused for `block`, at once and without hashing. Hashing itself
// runs a few at a time for the whole process, one at a time per address: scrypt runs on
// the libuv threadpool (4 threads by default), which getaddrinfo and fs need too, and one
// guesser must not crowd out everybody else's logins.

import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Metrics } from '../observe/metrics.js';
import { parseIPv6 } from '../config/ip.js';
import { Semaphore } from '../semaphore.js';

/** The client a login is for: aborted once it closed (or the gateway stopped). */
export interface Gone {
  readonly aborted: boolean;
}

export interface ThrottleLimits {
  max: number;
  window: number; // ms
  block: number; // ms
}

/** Scrypt runs at once for the whole process: half the default threadpool at most. */
export const HASH_SLOTS = 2;
/** Why a login is refused, right password or not, while its address is blocked. */
export const TOO_MANY_FAILURES = 'too many failed logins';
/** The first failure's delay; each further one doubles it, up to MAX_DELAY_MS. */
const BASE_DELAY_MS = 100;
const MAX_DELAY_MS = 3_000;
/** Addresses remembered (failures, log times); the least recently seen is forgotten. */
const MAX_SOURCES = 50_000;
/** Least recently seen addresses looked at, and forgotten when idle, as each new one comes. */
const SWEEP = 2;

interface SourceState {
  failures: number[]; // times of the failures still inside the window, oldest first
  blockedUntil: number;
  /** The end of this address's hash queue: its next hash starts after it. */
  tail: Promise<unknown>;
  /** Logins of this address queued or running now. */
  pending: number;
  lastLogged: number;
}

/** Shared by every authenticator of the process: reloads must not add slots. */
const hashSlots = new Semaphore(HASH_SLOTS);

export interface ThrottleOptions {
  log?: Logger;
  /**
   * Told of each failed login counted here: in a cluster worker the instance's other processes
   * count it too (failed() there), so `max` is the instance's, not each worker's.
   */
  share?: (source: string) => void;
  metrics?: Pick<Metrics, 'authRefusals' | 'limitRefusals'>;
  now?: () => number;
}

export class LoginThrottle {
  readonly #limits: ThrottleLimits;
  readonly #now: () => number;
  readonly #log: Logger | undefined;
  readonly #metrics: Pick<Metrics, 'authRefusals' | 'limitRefusals'> | undefined;
  readonly #opts: ThrottleOptions;
  readonly #sources: LRUCache<string, SourceState>;

  /** `sources`: the per-address state of the throttle this one follows (see withLimits). */
  constructor(limits: ThrottleLimits, opts: ThrottleOptions = {}, sources = new LRUCache<string, SourceState>({ max: MAX_SOURCES })) {
    this.#limits = limits;
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#log = opts.log;
    this.#metrics = opts.metrics;
    this.#sources = sources;
  }

  /**
   * A throttle with `limits` that goes on from this one's failures and blocks: a reload that
   * changes the users or the limits must not lift a block in force nor forget the failures
   * counted. A block keeps the end it was given; the new limits apply from the next failure.
   */
  withLimits(limits: ThrottleLimits): LoginThrottle {
    return new LoginThrottle(limits, this.#opts, this.#sources);
  }

  /**
   * Runs one login's `check` for `source`: refused at once while blocked; else after this
   * address's previous check (so a burst of guesses cannot outrun the count), and a
   * failure is answered after the address's current delay. A client `gone` by its turn is
   * not checked, and not counted: nobody is left to answer. `blocked` when refused unchecked
   * for the address's block, so the refusal is not logged as a wrong password.
   */
  async guard(source: string, check: () => Promise<boolean | undefined>, gone?: Gone): Promise<boolean | 'blocked'> {
    if (this.blocked(source)) {
      this.#refuse(source, 'blocked');
      return 'blocked';
    }
    const s = this.#state(source);
    s.pending++;
    const turn = s.tail.then(async (): Promise<number | 'blocked' | 'ok' | 'gone'> => {
      if (gone?.aborted) return 'gone';
      if (this.blocked(source)) return 'blocked';
      const ok = await check();
      if (ok === undefined) return 'gone';
      if (ok) return 'ok';
      this.#opts.share?.(source);
      return this.failed(source);
    });
    s.tail = turn.catch(() => undefined);
    let outcome;
    try {
      outcome = await turn;
    } finally {
      s.pending--;
      this.#forgetIfIdle(sourceKey(source), s);
    }
    if (outcome === 'ok') return true;
    if (outcome === 'gone') return false;
    if (outcome === 'blocked') {
      this.#refuse(source, 'blocked');
      return 'blocked';
    }
    this.#refuse(source, 'failed');
    if (outcome > 0 && !gone?.aborted) await new Promise((resolve) => setTimeout(resolve, outcome));
    return false;
  }

  /** True while `source` is blocked: refuse without hashing. */
  blocked(source: string): boolean {
    const s = this.#sources.get(sourceKey(source));
    return s !== undefined && s.blockedUntil > this.#now();
  }

  /**
   * Records a failed login, `ago` ms ago (another process's, counted before this one
   * started: given oldest first); returns how long to wait before answering it (0 once the
   * address is blocked: a blocked address is answered at once).
   */
  failed(source: string, ago = 0): number {
    const s = this.#state(source);
    const now = this.#now() - ago;
    const since = now - this.#limits.window;
    while (s.failures.length > 0 && s.failures[0]! <= since) s.failures.shift();
    s.failures.push(now);
    if (s.failures.length >= this.#limits.max) {
      s.blockedUntil = now + this.#limits.block;
      s.failures.length = 0;
      return 0;
    }
    return Math.min(BASE_DELAY_MS * 2 ** (s.failures.length - 1), MAX_DELAY_MS);
  }

  #refuse(source: string, reason: 'failed' | 'blocked'): void {
    this.#metrics?.authRefusals.inc({ reason });
    if (reason === 'blocked') this.#metrics?.limitRefusals.inc({ limit: 'auth_failures' });
    const s = this.#state(source);
    const now = this.#now();
    // Logged at most once a second per address: a flood of guesses must not flood the log.
    if (now - s.lastLogged >= 1_000) {
      s.lastLogged = now;
      this.#log?.warn({ client: source, reason: reason === 'blocked' ? TOO_MANY_FAILURES : 'authentication failed' }, 'login refused');
    }
  }

  /**
   * An address is remembered while it has something to act on: a failure inside the window,
   * a block, a login queued or running. Else every client that ever logged in, or failed
   * once long ago, would keep an entry (about 200 bytes) until MAX_SOURCES others pushed it
   * out, in every worker.
   */
  #idle(s: SourceState, now: number): boolean {
    const since = now - this.#limits.window;
    return s.pending === 0 && s.blockedUntil <= now && !s.failures.some((at) => at > since);
  }

  #forgetIfIdle(key: string, s: SourceState): void {
    if (this.#sources.peek(key) === s && this.#idle(s, this.#now())) this.#sources.delete(key);
  }

  /**
   * Forgets the idle ones among the SWEEP least recently seen addresses: no timer, no scan of
   * the table. One still held (a block in force) is made recent, so the next sweep looks past
   * it: left last, two silent blocked guessers kept every idle address behind them for `block`.
   */
  #sweep(): void {
    const now = this.#now();
    const looked: Array<[string, boolean]> = [];
    for (const key of this.#sources.rkeys()) {
      if (looked.length === SWEEP) break;
      const s = this.#sources.peek(key); // peek: an idle one is not made recent by looking
      looked.push([key, s === undefined || this.#idle(s, now)]);
    }
    // After the walk: get() and delete() reorder the list it walks.
    for (const [key, idle] of looked) {
      if (idle) this.#sources.delete(key);
      else this.#sources.get(key);
    }
  }

  /** Addresses remembered now (for tests). */
  get size(): number {
    return this.#sources.size;
  }

  #state(source: string): SourceState {
    const key = sourceKey(source);
    let s = this.#sources.get(key);
    if (s === undefined) {
      this.#sweep();
      s = { failures: [], blockedUntil: 0, tail: Promise.resolve(), pending: 0, lastLogged: -Infinity };
      this.#sources.set(key, s);
    }
    return s;
  }
}

let hashesStarted = 0;

/**
 * Every password hash of the process goes through here: at most HASH_SLOTS at once.
 * Undefined, with nothing hashed, for a client `gone` by its turn: one that gave up (or hit
 * its handshake deadline) in the queue must not spend a slot, nor keep others waiting.
 */
export function hashLimited<T>(hash: () => Promise<T>, gone?: Gone): Promise<T | undefined> {
  return hashSlots.run(() => {
    if (gone?.aborted) return Promise.resolve(undefined);
    hashesStarted++;
    return hash();
  });
}

/** Password hashes started by this process so far. */
export function hashCount(): number {
  return hashesStarted;
}

/** Logins waiting for a hashing slot now. */
export function hashesWaiting(): number {
  return hashSlots.waiting;
}

/**
 * An IPv6 client owns at least a /64 (RFC 4291 §2.5.4): counting per address would let it
 * rotate through 2^64 of them. IPv4 (and IPv4-mapped) addresses count one by one.
 */
function sourceKey(source: string): string {
  if (!source.includes(':') || source.toLowerCase().startsWith('::ffff:')) return source.replace(/^::ffff:/i, '');
  const w = parseIPv6(source);
  if (w === undefined) return source;
  return `${w[0]!.toString(16)}:${w[1]!.toString(16)}::/64`;
}
