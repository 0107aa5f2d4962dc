// Limits kept for the whole instance when it runs as several processes (`workers`): a
// client's per-source share, a user's `max_connections` and `auth_failures` are the
// instance's, as PRODUCT.md names them, not each worker's; so is a user's `bandwidth`,
// split among the workers relaying that user's connections. The primary holds the counts
// (src/cluster/limit-ledger.ts); a worker asks it (src/cluster/worker-limits.ts). One
// process has none of this: its own counts are the instance's.

export interface SharedLimits {
  /**
   * The questions of one request. Together they wait for the instance's answers at most once
   * (an HTTP request asks its source's share at its head, its user's after the login):
   * `unanswered` runs once, when the instance first did not answer one in time, and the
   * request's later questions are decided by the process's own count at once.
   */
  asking(unanswered: () => void): LedgerQuestions;
  give(key: string): void;
  /**
   * `n` slots of `key` this process holds already, counted whatever the max: connections
   * admitted while no limit applied, which a reload has just limited.
   */
  adopt(key: string, n: number): void;
  /** A failed login of `source` here, for the other processes to count. */
  loginFailed(source: string): void;
  /**
   * Runs `count` for each failed login another process of the instance counted, `ago` ms ago
   * (0 as it happens; more for those counted before this process started, given oldest first).
   */
  onLoginFailed(count: (source: string, ago: number) => void): void;
  /** This process holds a bucket of `user`'s now (true) or no more (false): the holders' shares change. */
  holdBandwidth(user: string, held: boolean): void;
  /** Runs `share` with the number of processes holding `user`'s bandwidth, whenever it changes. */
  onBandwidthShare(share: (user: string, holders: number) => void): void;
}

/** One request's questions to the instance (SharedLimits.asking). */
export interface LedgerQuestions {
  /**
   * Takes one slot of `key` (a client address, a user) if the instance holds fewer than
   * `max`: false when it is full. A slot taken is given back with give(), once. Undefined when
   * the instance could not be asked in time: the process's own count decides, and no slot is held.
   */
  take(key: string, max: number): Promise<boolean | undefined>;
  /**
   * How many other processes hold a bucket of `user`'s bandwidth now; this one counts among
   * the holders from the question on (holdBandwidth(user, false) when it takes none after all).
   * 0 when the instance could not be asked in time.
   */
  bandwidthHolders(user: string): Promise<number>;
}

/** The ledger's key of a client address's share. */
export const sourceSlot = (source: string): string => `source ${source}`;
/** The ledger's key of a user's share. */
export const userSlot = (user: string): string => `user ${user}`;
