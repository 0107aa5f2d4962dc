// Who may hold the admin listener's connections. A fixed cap alone let one client that opened
// as many idle connections as the cap lock out every probe and scrape; as nginx's limit_conn
// and Squid's client_ip_max_connections do, one address gets a share well below the total,
// its next connection takes the place of its own oldest idle one (on a loopback listener
// every client shares 127.0.0.1), and when the listener is full a new connection takes the
// place of an idle one of the address holding the most, as Envoy's overload manager drops idle connections first.

import type { Socket } from 'node:net';
import { unmapped } from '../protocol/address.js';

export interface AdminConnectionLimits {
  /** Connections open at once: beyond it a new one replaces an idle one, or is dropped when none is idle. */
  total: number;
  /** Connections one client address may hold: beyond it a new one replaces its oldest idle one, or is dropped when none is idle. */
  perSource: number;
}

/** Open connections by client address (oldest first), and the requests each one is serving. */
export class AdminConnections {
  readonly #limits: AdminConnectionLimits;
  readonly #bySource = new Map<string, Set<Socket>>();
  /** Requests in progress per connection (pipelined ones count each); absent: idle. */
  readonly #busy = new Map<Socket, number>();
  #open = 0;

  constructor(limits: AdminConnectionLimits) {
    this.#limits = limits;
  }

  /** Takes a new connection in, or destroys it; false when it was refused. */
  admit(socket: Socket): boolean {
    const source = unmapped(socket.remoteAddress ?? '');
    // At its share, an address's new connection takes the place of its own oldest idle one: on a
    // loopback listener every client (the prober, the scraper, anyone else) is 127.0.0.1.
    const own = this.#bySource.get(source);
    const atShare = (own?.size ?? 0) >= this.#limits.perSource;
    if ((atShare && !this.#evictIdleOf(source, own!)) || (!atShare && this.#open >= this.#limits.total && !this.#evictIdle())) {
      socket.destroy();
      return false;
    }
    // Read again: the eviction may have taken this address's last one.
    let set = this.#bySource.get(source);
    if (!set) this.#bySource.set(source, (set = new Set()));
    set.add(socket);
    this.#open++;
    socket.once('close', () => this.#forget(source, socket));
    return true;
  }

  /** A request began on `socket`: it is not idle until `done` runs. */
  serving(socket: Socket): () => void {
    this.#busy.set(socket, (this.#busy.get(socket) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.#busy.get(socket) ?? 1) - 1;
      if (n > 0) this.#busy.set(socket, n);
      else this.#busy.delete(socket);
    };
  }

  /**
   * Closes the oldest idle connection of the address holding the most (then the next one's):
   * a request being answered is never cut. Idle is also a connection still sending its head,
   * which headers_timeout would end anyway. False when every connection is serving a request.
   */
  #evictIdle(): boolean {
    const sources = [...this.#bySource].sort(([, a], [, b]) => b.size - a.size);
    return sources.some(([sourceOf, set]) => this.#evictIdleOf(sourceOf, set));
  }

  /** Closes the oldest idle connection of `source`; false when each of them is serving a request. */
  #evictIdleOf(source: string, set: Set<Socket>): boolean {
    for (const s of set) {
      if (this.#busy.has(s)) continue;
      // Counted out now: the new connection takes its place before this one's 'close' comes.
      this.#forget(source, s);
      s.destroy();
      return true;
    }
    return false;
  }

  /** Counts `socket` out, once (an evicted one is counted out before its 'close'). */
  #forget(source: string, socket: Socket): void {
    const set = this.#bySource.get(source);
    if (!set?.delete(socket)) return;
    this.#busy.delete(socket);
    this.#open--;
    if (set.size === 0) this.#bySource.delete(source);
  }
}
