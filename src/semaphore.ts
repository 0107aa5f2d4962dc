// Bounding work that holds a scarce resource while it runs: libuv's 4 threads, which scrypt
// (password checks), getaddrinfo (the system resolver) and file reads share.

/** At most `size` tasks run at once; the others wait in arrival order. */
export class Semaphore {
  readonly #size: number;
  #running = 0;
  readonly #waiting: Array<() => void> = [];

  constructor(size: number) {
    this.#size = size;
  }

  /** Tasks waiting for a slot. */
  get waiting(): number {
    return this.#waiting.length;
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#running >= this.#size) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#running++;
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next(); // the slot passes on as it is
      else this.#running--;
    }
  }
}
