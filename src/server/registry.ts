// The open client connections, for the admin API (list, kill) and the drain on shutdown.
// The request pipeline registers every accepted connection and fills in what it learns
// (user, destination, rule, member) as the request advances; the entry goes at close.

import type { ConnectionInfo, OpenConnections } from '../observe/open-connections.js';

export interface LiveConnection {
  readonly id: number;
  /** A snapshot of the fields above, byte counts read now. */
  info(): ConnectionInfo;
  /** Ends both sockets at once; the access-log line is still written (error "killed"). */
  kill(reason: string): void;
  /** The gateway stops for good: aborts what the connection waits on (dials, lookups, BIND). */
  stop(): void;
  /** The gateway begins to stop: a client that has sent no byte of a request yet is closed now. */
  letGoIfSilent(): void;
  /** Switches TCP keepalive on for the socket on the far side (once per socket). */
  keepRemoteAlive(): void;
}

/** Where a process's connection ids start and how far apart they are. */
export interface IdSpace {
  first: number;
  step: number;
}

export class ConnectionRegistry implements OpenConnections {
  readonly #open = new Map<number, LiveConnection>();
  #nextId: number;
  readonly #step: number;

  /**
   * Ids `first`, `first + step`, …: a cluster's workers each take their own residue (worker
   * slot + 1, step = workers), so an id names one connection across the whole cluster.
   */
  constructor(ids: IdSpace = { first: 1, step: 1 }) {
    this.#nextId = ids.first;
    this.#step = ids.step;
  }

  /** A fresh id for an accepted connection (never reused in a process). */
  nextId(): number {
    const id = this.#nextId;
    this.#nextId += this.#step;
    return id;
  }

  add(conn: LiveConnection): void {
    this.#open.set(conn.id, conn);
  }

  delete(id: number): void {
    this.#open.delete(id);
  }

  get size(): number {
    return this.#open.size;
  }

  get(id: number): LiveConnection | undefined {
    return this.#open.get(id);
  }

  list(): ConnectionInfo[] {
    return [...this.#open.values()].map((c) => c.info());
  }

  /** Aborts every open connection's signal (the gateway stops after its drain). */
  stopAll(): void {
    for (const conn of this.#open.values()) conn.stop();
  }

  /**
   * The drain begins: clients that have sent nothing yet have no request in flight, and are
   * closed rather than held to their handshake deadline (as idle keep-alive HTTP clients are).
   */
  letGoSilent(): void {
    for (const conn of this.#open.values()) conn.letGoIfSilent();
  }

  /** TCP keepalive for the far side of every open connection that has one and lacks it. */
  keepAlive(): void {
    for (const conn of this.#open.values()) conn.keepRemoteAlive();
  }

  /** Kills one connection; false when no such id is open. */
  kill(id: number, reason = 'killed'): boolean {
    const conn = this.#open.get(id);
    if (!conn) return false;
    conn.kill(reason);
    return true;
  }
}
