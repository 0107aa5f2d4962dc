// What the primary knows of each worker from its messages (slots.ts): since when it serves
// (`ready`), and the admin token the config it runs has (`applied`).
import type { ToPrimary } from './messages.js';

/**
 * For workers of any kind `W` (cluster's Worker in the primary), so what each message does can
 * be checked message by message. `onReady` runs for a worker once it serves.
 */
export class ServedWorkers<W extends object> {
  /** When each worker began to serve (one not in it is still starting). */
  readonly #servedAt = new Map<W, number>();
  readonly #tokens = new Map<W, string | null>();
  readonly #onReady: (w: W) => void;
  readonly #now: () => number;

  constructor(onReady: (w: W) => void, now: () => number = Date.now) {
    this.#onReady = onReady;
    this.#now = now;
  }

  /** One message from `w`, as read from its channel. */
  receive(w: W, msg: unknown): void {
    const m = msg as Partial<ToPrimary> | null;
    if (m?.socksgate === 'ready') {
      this.#servedAt.set(w, this.#now());
      this.#onReady(w);
    } else if (m?.socksgate === 'applied' && (typeof m.apiToken === 'string' || m.apiToken === null)) this.#tokens.set(w, m.apiToken);
  }

  /** `w` exited: when it began to serve (undefined: it never did). */
  drop(w: W): number | undefined {
    const served = this.#servedAt.get(w);
    this.#servedAt.delete(w);
    this.#tokens.delete(w);
    return served;
  }

  served(w: W): boolean {
    return this.#servedAt.has(w);
  }

  hasToken(w: W): boolean {
    return this.#tokens.has(w);
  }

  /** The admin token `w` runs with (null: none); undefined before it reported one. */
  token(w: W): string | null | undefined {
    return this.#tokens.get(w);
  }
}
