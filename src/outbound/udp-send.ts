// Sending datagrams on one dgram socket within a ByteBudget, with nothing allocated per
// datagram on the common path: the kernel takes the datagram at once.

import type { Socket } from 'node:dgram';
import type { ByteBudget } from './byte-budget.js';

/**
 * Up to this many bytes, a header and its payload are copied into one pooled buffer (Node's
 * pool serves allocations below half its size); beyond, they go as two buffers, which costs
 * more per send than copying a small payload but less than copying a large one.
 */
const COPY_BELOW = Buffer.poolSize >>> 1;

/**
 * One socket's sends. Node sends at once when the kernel has room and queues the datagram
 * otherwise (EAGAIN); what the queue holds is held in the budget, read back from the socket
 * after each send and as queued ones complete, so no per-datagram closure is needed. Every
 * send still takes the one shared callback: it is how a send error is reported.
 */
export class DatagramSender {
  readonly #socket: Socket;
  readonly #budget: ByteBudget;
  readonly #failed: (err: Error) => void;
  readonly #done: (err: Error | null) => void;
  /** Bytes of this socket's send queue held in the budget. */
  #held = 0;
  #closed = false;

  constructor(socket: Socket, budget: ByteBudget, failed: (err: Error) => void) {
    this.#socket = socket;
    this.#budget = budget;
    this.#failed = failed;
    this.#done = (err) => {
      if (this.#held > 0) this.#settle();
      if (err) failed(err);
    };
    // Closed from elsewhere (its channel or association ended): nothing is queued any more.
    socket.once('close', () => this.close());
  }

  /**
   * Sends `head` (if any) then `payload`, to `port` and `host`, or to the connected peer when
   * `port` is undefined. False, with nothing sent, when the budget is short. Never throws: a
   * synchronous throw (a bad port, a closed socket) goes to `failed` like a send error.
   */
  send(head: Buffer | undefined, payload: Buffer, port?: number, host?: string): boolean {
    if (this.#closed) return false;
    const n = (head === undefined ? 0 : head.length) + payload.length;
    if (!this.#budget.take(n)) return false;
    this.#held += n;
    try {
      const data = head === undefined ? payload : n < COPY_BELOW ? joined(head, payload, n) : [head, payload];
      if (port === undefined) this.#socket.send(data, this.#done);
      else this.#socket.send(data, port, host, this.#done);
    } catch (err) {
      this.#settle();
      this.#failed(err as Error);
      return true;
    }
    this.#settle();
    return true;
  }

  /** Gives back what the queue held; the socket closes next and cancels whatever is queued. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#budget.give(this.#held);
    this.#held = 0;
  }

  /** Holds exactly what the socket's queue holds (never more than was taken for it). */
  #settle(): void {
    if (this.#closed) return;
    const queued = this.#socket.getSendQueueSize();
    if (queued >= this.#held) return;
    this.#budget.give(this.#held - queued);
    this.#held = queued;
  }
}

function joined(head: Buffer, payload: Buffer, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  head.copy(out, 0);
  payload.copy(out, head.length);
  return out;
}

