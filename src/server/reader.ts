import type { Socket } from 'node:net';

/**
 * Pulls a socket's chunks one at a time for the handshake. The socket stays
 * paused while a chunk waits, so a client can never queue more than one
 * chunk here; detach() hands the socket back untouched for the relay.
 */
export class ChunkReader {
  readonly #socket: Socket;
  #queued: Buffer | null = null;
  #ended = false;
  #detached = false;
  #waiter: ((chunk: Buffer | null) => void) | null = null;
  // Assigned in the constructor, not as arrow-function fields (see ClientConnection).
  readonly #onData: (chunk: Buffer) => void;
  readonly #onEnd: () => void;

  constructor(socket: Socket) {
    this.#socket = socket;
    this.#onData = (chunk) => {
      socket.pause();
      const waiter = this.#waiter;
      this.#waiter = null;
      if (waiter) waiter(chunk);
      else this.#queued = this.#queued ? Buffer.concat([this.#queued, chunk]) : chunk;
    };
    this.#onEnd = () => {
      this.#ended = true;
      const waiter = this.#waiter;
      this.#waiter = null;
      waiter?.(null);
    };
    socket.on('data', this.#onData);
    socket.on('end', this.#onEnd);
    socket.on('close', this.#onEnd);
  }

  /** The next chunk, or null at end of stream (EOF, error or close). */
  next(): Promise<Buffer | null> {
    if (this.#queued) {
      const chunk = this.#queued;
      this.#queued = null;
      return Promise.resolve(chunk);
    }
    if (this.#ended) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.#waiter = resolve;
      this.#socket.resume();
    });
  }

  /** Idempotent: only the first call pauses the socket and hands back a queued chunk. */
  detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#socket.pause();
    this.#socket.off('data', this.#onData);
    this.#socket.off('end', this.#onEnd);
    this.#socket.off('close', this.#onEnd);
    if (this.#queued) this.#socket.unshift(this.#queued);
    this.#queued = null;
  }
}
