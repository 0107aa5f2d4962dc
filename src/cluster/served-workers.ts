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
  /**
   * Workers dropped (exited). node may emit a worker's 'exit' before the last messages on its
   * channel are read: a `ready` read then would count the dead worker as serving for good (and
   * send it the bans and a reload catch-up). By identity: a replacement is another object.
   */
  readonly #dropped = new WeakSet<W>();
  readonly #onReady: (w: W) => void;
  readonly #now: () => number;

  constructor(onReady: (w: W) => void, now: () => number = Date.now) {
    this.#onReady = onReady;
    this.#now = now;
  }

  /** One message from `w`, as read from its channel. */
  receive(w: W, msg: unknown): void {
    if (this.#dropped.has(w)) return;
    const m = msg as Partial<ToPrimary> | null;
    if (m?.socksgate === 'ready') {
      this.#servedAt.set(w, this.#now());
      this.#onReady(w);
    } else if (m?.socksgate === 'applied' && (typeof m.apiToken === 'string' || m.apiToken === null)) this.#tokens.set(w, m.apiToken);
  }

  /** `w` exited: when it began to serve (undefined: it never did); its later messages change nothing. */
  drop(w: W): number | undefined {
    this.#dropped.add(w);
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
