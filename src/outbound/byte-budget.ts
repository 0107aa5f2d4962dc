// Bytes of UDP payload held at once: datagrams waiting for a route, a name, a channel, or a
// socket's send queue. UDP promises nothing, so past the budget a datagram is dropped (and
// counted), never queued: a flood costs a bounded amount of memory, per association and
// for the whole gateway (an association's budget draws on the gateway's as well).

/** What one association may hold: enough for bursts of full-size datagrams. */
export const ASSOCIATION_UDP_BYTES = 2 * 1024 * 1024;
/** What every association together may hold. */
export const GATEWAY_UDP_BYTES = 64 * 1024 * 1024;
/**
 * What holding one datagram costs beyond its payload, charged with it while it waits (for a
 * route or a name): its Buffer and backing store, and the closure and promise reaction that
 * keep it. Measured at about 0.5 KiB of heap and 0.85 KiB of RSS for a 10-byte datagram;
 * charged by its bytes alone, 2 MiB admitted 200 000 tiny datagrams and 170 MB.
 */
export const HELD_DATAGRAM_BYTES = 1024;

export class ByteBudget {
  readonly #limit: number;
  readonly #parent: ByteBudget | undefined;
  #used = 0;
  #closed = false;

  constructor(limit: number, parent?: ByteBudget) {
    this.#limit = limit;
    this.#parent = parent;
  }

  /** Bytes held now. */
  get used(): number {
    return this.#used;
  }

  /** Holds `n` bytes here and in the parent; false, holding nothing, when either is short. */
  take(n: number): boolean {
    if (this.#closed || this.#used + n > this.#limit) return false;
    if (this.#parent && !this.#parent.take(n)) return false;
    this.#used += n;
    return true;
  }

  /** Returns what `take(n)` held. */
  give(n: number): void {
    if (this.#closed) return;
    this.#used -= n;
    this.#parent?.give(n);
  }

  /**
   * Returns everything still held to the parent and takes nothing more. For an association
   * that ends: a send whose callback never comes (its socket closed first) must not keep
   * the gateway's bytes.
   */
  close(): void {
    if (this.#closed) return;
    this.#parent?.give(this.#used);
    this.#used = 0;
    this.#closed = true;
  }
}
