// Connection limits (PRODUCT.md "Limits"). `max_connections_per_source` and a user's
// `max_connections` are shares: they are checked on a complete request (admit), so the client
// hears why (SOCKS5 0x02, SOCKS4 0x5B, HTTP 429). `max_connections` and `max_handshakes` guard
// the whole gateway and are checked at accept (limits-accept.ts). The counts live here, for
// the gateway's lifetime (a reload changes the numbers, not who holds what); each connection
// holds its slots until it closes and gives them back once. In a cluster worker a share with a
// limit is also taken from the instance's ledger (shared-limits.ts): the share is the instance's.

import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { Config, UserConfig } from '../config/types.js';
import { LimitError, type LimitName } from '../errors.js';
import type { Metrics } from '../observe/metrics.js';
import { BandwidthLimits, type TokenBucket } from './bandwidth.js';
import { LedgerSlots } from './ledger-slots.js';
import type { ProxyRequest } from './request.js';
import { sourceSlot, userSlot, type LedgerQuestions, type SharedLimits } from './shared-limits.js';

export const LIMIT_NAMES: readonly LimitName[] = ['max_connections', 'max_handshakes', 'max_connections_per_source', 'user_max_connections'];

/** One error per limit, made once: a refusal under overload allocates nothing for it. */
export const LIMIT_ERRORS: Readonly<Record<LimitName, LimitError>> = Object.freeze({
  max_connections: new LimitError('max_connections'),
  max_handshakes: new LimitError('max_handshakes'),
  max_connections_per_source: new LimitError('max_connections_per_source'),
  user_max_connections: new LimitError('user_max_connections'),
});

/**
 * Open connections by key (client IP, user). A key goes at zero: the map holds live ones only.
 * Client IPs come unmapped (ClientConnection.source): an IPv4 client is one key whichever
 * listener it came through.
 */
export class Counts {
  readonly #n = new Map<string, number>();

  get(key: string): number {
    return this.#n.get(key) ?? 0;
  }

  add(key: string): void {
    this.#n.set(key, this.get(key) + 1);
  }

  remove(key: string): void {
    const n = this.get(key);
    if (n <= 1) this.#n.delete(key);
    else this.#n.set(key, n - 1);
  }

  /** Keys with at least one open connection. */
  get size(): number {
    return this.#n.size;
  }

  entries(): IterableIterator<[string, number]> {
    return this.#n.entries();
  }
}

/** Said (at debug, once per request) when a request's share was decided by this worker's count alone. */
export const UNANSWERED = "the primary did not answer in time; this worker's own count decided";

/** Client IPs remembered for the once-a-second rule; past this, refusals from new IPs are not logged (still counted). */
const MAX_TRACKED = 4_096;
const LOG_EVERY_MS = 1_000;

/**
 * Decides which refusals are logged: at most one per client IP per second, so a client
 * hammering a limit cannot flood the log. Bounded in memory: stale entries are pruned at
 * most once a second, and only when the table is full.
 */
export class RefusalLog {
  readonly #last = new Map<string, number>();
  readonly #now: () => number;
  #prunedAt = Number.NEGATIVE_INFINITY;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
  }

  /** True when a refusal of `client` now should be logged (and remembers that it was). */
  shouldLog(client: string): boolean {
    const now = this.#now();
    const last = this.#last.get(client);
    if (last !== undefined && now - last < LOG_EVERY_MS) return false;
    if (last === undefined && this.#last.size >= MAX_TRACKED && !this.#prune(now)) return false;
    this.#last.set(client, now);
    return true;
  }

  /** Drops entries older than a second; false when the table is still full (or was pruned within the second). */
  #prune(now: number): boolean {
    if (now - this.#prunedAt < LOG_EVERY_MS) return false;
    this.#prunedAt = now;
    for (const [client, at] of this.#last) if (now - at >= LOG_EVERY_MS) this.#last.delete(client);
    return this.#last.size < MAX_TRACKED;
  }

  get size(): number {
    return this.#last.size;
  }
}

/** The users a config names, by name, made once per config. */
const usersCache = new WeakMap<Config, ReadonlyMap<string, UserConfig>>();
function usersOf(config: Config): ReadonlyMap<string, UserConfig> {
  let users = usersCache.get(config);
  if (!users) {
    users = new Map((config.auth?.users ?? []).map((u) => [u.username, u]));
    usersCache.set(config, users);
  }
  return users;
}

/** The gateway's limit state: counts per source and user, handshakes in progress, bandwidth buckets. */
export class Limits {
  readonly sources = new Counts();
  readonly users = new Counts();
  readonly bandwidth: BandwidthLimits;
  /** The instance's ledger in a cluster worker; undefined in one process. */
  readonly shared: SharedLimits | undefined;
  /** Which of `sources` and `users` the instance's ledger counts (cluster workers only). */
  readonly ledger: LedgerSlots | undefined;
  readonly #log: Logger;
  readonly #refusalLog: RefusalLog;
  readonly #counters: Readonly<Record<LimitName, Counter.Internal>>;
  #handshakes = 0;
  /** The users of the config live now: a user's bandwidth follows it, whichever config a request began on. */
  #liveUsers: ReadonlyMap<string, UserConfig>;

  constructor(metrics: Metrics, log: Logger, config: Config, refusalLog = new RefusalLog(), shared?: SharedLimits) {
    this.#liveUsers = usersOf(config);
    this.shared = shared;
    this.ledger = shared === undefined ? undefined : new LedgerSlots(shared);
    this.bandwidth = new BandwidthLimits(shared);
    this.#log = log;
    this.#refusalLog = refusalLog;
    const counters = {} as Record<LimitName, Counter.Internal>;
    for (const name of LIMIT_NAMES) {
      counters[name] = metrics.limitRefusals.labels(name);
      counters[name].inc(0); // every series exists from the start (rate() needs a first sample)
    }
    this.#counters = counters;
  }

  /** Connections accepted whose request is not complete yet. */
  get handshakes(): number {
    return this.#handshakes;
  }

  handshakeBegan(): void {
    this.#handshakes++;
  }

  handshakeEnded(): void {
    this.#handshakes--;
  }

  /** Counts a refusal by its limit; logs it with its reason unless `client` (an IP) had one logged within the second. */
  refused(client: string, err: LimitError): void {
    this.#counters[err.limit].inc();
    if (this.#refusalLog.shouldLog(client)) this.#log.warn({ client, limit: err.limit, reason: err.message }, 'client refused by a limit');
  }

  /** A request of `client` whose questions to the instance went unanswered (shared-limits.ts). */
  unanswered(client: string): void {
    this.#log.debug({ client }, UNANSWERED);
  }

  /**
   * A reload: each user's shared bucket takes the user's new `bandwidth`, so the connections
   * already open are held to the rate the next ones get (no limit any more: none for them either).
   */
  reconfigure(config: Config): void {
    this.#liveUsers = usersOf(config);
    this.bandwidth.retune(this.#liveUsers);
    const ledger = this.ledger;
    if (ledger === undefined) return;
    // A share a reload sets counts the connections open already, as one process counts them.
    if (config.limits.max_connections_per_source > 0) ledger.adopt('source', this.sources.entries(), () => true);
    const users = this.#liveUsers;
    ledger.adopt('user', this.users.entries(), (user) => users.get(user)?.max_connections !== undefined);
  }

  /**
   * The user's `bandwidth` in the config live now, not in `config`, the request's own: a SOCKS
   * request whose handshake began before a reload runs on the config before it, and would set
   * the user's one bucket back to the rate the reload changed. A user the reload removed keeps
   * the limit of the config the request began on.
   */
  bandwidthOf(user: string, config: Config): number | undefined {
    return (this.#liveUsers.get(user) ?? usersOf(config).get(user))?.bandwidth;
  }

  /** The slots of one client connection, empty until its first request is admitted. */
  connection(): ConnectionLimits {
    return new ConnectionLimits(this);
  }
}

/**
 * What one client connection holds: its source's slot, its user's slot and bandwidth bucket.
 * An HTTP keep-alive connection is admitted per request but holds one source slot, and one
 * user slot at a time (a request as another user moves it).
 */
export class ConnectionLimits {
  readonly #limits: Limits;
  #source: string | undefined;
  #user: string | undefined;
  #bandwidth: ReturnType<BandwidthLimits['acquire']> | undefined;
  /**
   * The questions to the instance an HTTP request asked at its head (admitSource), and the
   * request they go on into (carryTo): its user, asked after the login (admit), shares their
   * wait for the primary. A CONNECT on the same connection after a request refused in between
   * is another request, with a wait of its own.
   */
  #asking: LedgerQuestions | undefined;
  #askingFor: ProxyRequest | undefined;

  constructor(limits: Limits) {
    this.#limits = limits;
  }

  /** The user's shared bandwidth bucket, when the admitted user has `bandwidth`. */
  get throttle(): TokenBucket | undefined {
    return this.#bandwidth?.bucket;
  }

  /**
   * Takes the slots `request` needs, or throws LimitError (counted and logged) and takes none.
   * In a cluster worker a share with a limit is asked of the instance's ledger first: then the
   * answer is a promise (one process stays synchronous, with nothing to wait for).
   */
  admit(request: ProxyRequest, config: Config): void | Promise<void> {
    const limits = this.#limits;
    const source = request.source.host;
    // The request's admission ends here: what it asked at its head is not the next one's.
    const asking = this.#askingFor === request ? this.#asking : undefined;
    this.#asking = undefined;
    this.#askingFor = undefined;
    this.#checkSource(source, config);
    const user = request.user;
    let userMax: number | undefined;
    if (user !== undefined && user !== this.#user) {
      userMax = usersOf(config).get(user)?.max_connections;
      if (userMax !== undefined && limits.users.get(user) >= userMax) throw this.#refuse(source, 'user_max_connections');
    }
    const sourceMax = this.#source === undefined ? config.limits.max_connections_per_source : 0;
    const shared = limits.shared;
    if (shared !== undefined) {
      // The user's bandwidth, the first of this user's connections here: the share is asked too.
      const joins = user !== undefined && limits.bandwidthOf(user, config) !== undefined && !limits.bandwidth.holding(user);
      if (sourceMax > 0 || userMax !== undefined || joins) return this.#admitShared(shared, asking ?? this.#questions(shared, source), request, config, sourceMax, userMax, joins);
    }
    this.#take(request, config);
  }

  /** admit()'s second half: the slots taken here, the checks passed. `others`: processes holding the user's bandwidth. */
  #take(request: ProxyRequest, config: Config, others = 0): void {
    const limits = this.#limits;
    const user = request.user;
    if (user !== this.#user) {
      this.#releaseUser();
      if (user !== undefined) {
        limits.users.add(user);
        this.#user = user;
      }
    }
    // Per request, not per user change: a reload may have given the user of a kept-alive HTTP
    // connection a bandwidth, or taken it away, since its last request.
    if (user !== undefined) this.#holdBandwidth(user, limits.bandwidthOf(user, config), others);
    this.#takeSource(request.source.host);
  }

  /**
   * admit() in a cluster worker: each limited share is taken from the instance's ledger, all
   * asked at once; a refusal gives back what was taken, as a refusal here takes nothing.
   */
  async #admitShared(shared: SharedLimits, asking: LedgerQuestions, request: ProxyRequest, config: Config, sourceMax: number, userMax: number | undefined, joins: boolean): Promise<void> {
    const limits = this.#limits;
    const source = request.source.host;
    const user = request.user!;
    // Asked at once, not in turn: a stalled primary holds the request for one wait, not one per question.
    const [sourceTaken, userTaken, others] = await Promise.all([
      sourceMax > 0 ? asking.take(sourceSlot(source), sourceMax) : undefined,
      userMax !== undefined ? asking.take(userSlot(user), userMax) : undefined,
      joins ? asking.bandwidthHolders(user) : 0,
    ]);
    try {
      // A refusal gives back what the other question took, as a refusal here takes nothing.
      if (sourceTaken === false || userTaken === false) {
        if (sourceTaken === true) shared.give(sourceSlot(source));
        if (userTaken === true) shared.give(userSlot(user));
        throw this.#refuse(source, sourceTaken === false ? 'max_connections_per_source' : 'user_max_connections');
      }
      // `undefined`: the primary did not answer in time, this process's count admitted it, the ledger holds nothing.
      this.#takeSourceGranted(shared, source, sourceTaken === true);
      this.#take(request, config, others);
      if (userTaken === true) limits.ledger?.took('user', user);
    } finally {
      // Asked, then no bucket taken after all (refused, or a reload lifted the rate meanwhile): not a holder.
      if (joins && !limits.bandwidth.holding(user)) shared.holdBandwidth(user, false);
    }
  }

  /** True when the ledger counts the slot it granted; false when it did not answer in time (this process's count admitted it). */
  async #takeShared(asking: LedgerQuestions, key: string, max: number, limit: LimitName, source: string): Promise<boolean> {
    const taken = await asking.take(key, max);
    if (taken === false) throw this.#refuse(source, limit);
    return taken === true;
  }

  /** A bucket held is the user's one bucket, which every reload retunes to the live rate. */
  #holdBandwidth(user: string, rate: number | undefined, others: number): void {
    if (rate !== undefined) {
      this.#bandwidth ??= this.#limits.bandwidth.acquire(user, rate, others);
      return;
    }
    this.#bandwidth?.release();
    this.#bandwidth = undefined;
  }

  /**
   * The source's slot alone, taken (or refused) before the request is authenticated: an HTTP
   * connection stays open after a 407 or a 400, and one never admitted would not count
   * against its source however many such connections it held. A promise in a cluster worker,
   * as admit().
   */
  admitSource(source: string, config: Config): void | Promise<void> {
    this.#asking = undefined; // a request begins
    this.#askingFor = undefined;
    this.#checkSource(source, config);
    const shared = this.#limits.shared;
    const max = config.limits.max_connections_per_source;
    if (shared !== undefined && this.#source === undefined && max > 0) return this.#admitSourceShared(shared, source, max);
    this.#takeSource(source);
  }

  /** The request whose head admitSource() just admitted, logged in: its admission goes on from there. */
  carryTo(request: ProxyRequest): void {
    if (this.#asking !== undefined) this.#askingFor = request;
  }

  async #admitSourceShared(shared: SharedLimits, source: string, max: number): Promise<void> {
    const asking = (this.#asking = this.#questions(shared, source));
    this.#takeSourceGranted(shared, source, await this.#takeShared(asking, sourceSlot(source), max, 'max_connections_per_source', source));
  }

  /** A request's questions to the instance; said once if they go unanswered. */
  #questions(shared: SharedLimits, source: string): LedgerQuestions {
    return shared.asking(() => this.#limits.unanswered(source));
  }

  /**
   * The source's slot after the ledger's answer (`granted`: it counts one for this process):
   * this connection's if it holds none yet, else the ledger's is given back (a connection
   * admitted meanwhile, or a kept-alive one, holds its source once).
   */
  #takeSourceGranted(shared: SharedLimits, source: string, granted: boolean): void {
    if (this.#source !== undefined) {
      if (granted) shared.give(sourceSlot(source));
      return;
    }
    this.#takeSource(source);
    if (granted) this.#limits.ledger?.took('source', source);
  }

  /** Throws LimitError when `source` has no room left; a connection holding its slot always has. */
  #checkSource(source: string, config: Config): void {
    const perSource = config.limits.max_connections_per_source;
    if (this.#source === undefined && perSource > 0 && this.#limits.sources.get(source) >= perSource) {
      throw this.#refuse(source, 'max_connections_per_source');
    }
  }

  /** Holds `source`'s slot, once per connection. */
  #takeSource(source: string): void {
    if (this.#source !== undefined) return;
    this.#limits.sources.add(source);
    this.#source = source;
  }

  /** Gives every slot back; idempotent (the connection's end calls it once, a second call does nothing). */
  release(): void {
    this.#releaseUser();
    if (this.#source !== undefined) {
      this.#limits.sources.remove(this.#source);
      this.#limits.ledger?.give('source', this.#source, this.#limits.sources.get(this.#source));
    }
    this.#source = undefined;
  }

  #releaseUser(): void {
    if (this.#user !== undefined) {
      this.#limits.users.remove(this.#user);
      this.#limits.ledger?.give('user', this.#user, this.#limits.users.get(this.#user));
    }
    this.#user = undefined;
    this.#bandwidth?.release();
    this.#bandwidth = undefined;
  }

  #refuse(source: string, limit: LimitName): LimitError {
    const err = LIMIT_ERRORS[limit];
    this.#limits.refused(source, err);
    return err;
  }
}
