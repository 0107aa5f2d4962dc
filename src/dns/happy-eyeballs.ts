// Happy eyeballs (RFC 8305 §5): try the addresses with the families taking turns (§4),
// starting the next one when the previous attempt fails or after the connection
// attempt delay, whichever comes first. The first connection wins; every
// other attempt is destroyed. When all fail, the last real error decides the reply.

import { connect, type Socket } from 'node:net';
import { ConnectTimeoutError, NameNotResolvedError } from '../errors.js';
import type { Cancellation, ConnectOptions, ResolvedAddress, TcpConnector } from './types.js';

/** RFC 8305 §5 recommends 250 ms between attempts. */
export const CONNECTION_ATTEMPT_DELAY = 250;

const noop = (): void => {};

/**
 * Outbound sockets relay as the client's do: no Nagle delay on small writes (a request line,
 * a 64-byte echo). Keepalive comes later, for the connections still open (the gateway's
 * keepalive sweep).
 */
const SOCKET_OPTIONS = { noDelay: true } as const;

function abortError(signal: Cancellation): unknown {
  return signal.reason ?? new DOMException('connect aborted', 'AbortError');
}

export const connectHappyEyeballs: TcpConnector = (addresses, port, opts) =>
  new Promise<Socket>((resolve, reject) => {
    if (addresses.length === 0) return reject(new NameNotResolvedError(`port ${port}`, 'no addresses to connect to'));
    if (opts.signal?.aborted) return reject(abortError(opts.signal));
    new Attempts(interleaved(addresses), port, opts, resolve, reject).start();
  });

/**
 * RFC 8305 §4: the first address keeps its place (its family is the preferred one), then the
 * families alternate. In the resolver's order (all of one family, then the other) a family
 * whose path blackholes held the other back one attempt delay per address of its own: a
 * working IPv6 address behind 8 A records that never answer waited 2 s, past a short
 * connect_timeout, where curl, Go and Node's own dialer reach it in one delay.
 */
function interleaved(addresses: readonly ResolvedAddress[]): readonly ResolvedAddress[] {
  const first = addresses[0]!.family;
  // Most dials have one family (one address, or a name with A records only): no copy.
  if (addresses.every((a) => a.family === first)) return addresses;
  const same = addresses.filter((a) => a.family === first);
  const other = addresses.filter((a) => a.family !== first);
  const out: ResolvedAddress[] = [];
  for (let i = 0; i < Math.max(same.length, other.length); i++) {
    if (i < same.length) out.push(same[i]!);
    if (i < other.length) out.push(other[i]!);
  }
  return out;
}

function describe(addr: ResolvedAddress, port: number): string {
  return `${addr.family === 6 ? `[${addr.address}]` : addr.address}:${port}`;
}

/** One address being dialed, with the listeners it is given back without. */
interface Attempt {
  readonly sock: Socket;
  readonly onConnect: () => void;
  readonly onError: (err: Error) => void;
}

/**
 * The attempts of one dial. Most dials have one address (an IP literal, a name with one
 * record: every dial of a crawler whose requests arrive resolved), so the bookkeeping is a
 * small array and listeners are removed one by one, not through once() wrappers or
 * removeAllListeners.
 */
class Attempts {
  readonly #addresses: readonly ResolvedAddress[];
  readonly #port: number;
  readonly #opts: ConnectOptions;
  readonly #resolve: (s: Socket) => void;
  readonly #reject: (e: unknown) => void;
  readonly #pending: Attempt[] = [];
  #next = 0;
  #lastError: unknown;
  #done = false;
  #stagger: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  // Assigned in the constructor rather than as an arrow-function field: a field initializer
  // gets its name set by Object.defineProperty under tsx, a slow dictionary-mode function per dial.
  readonly #onAbort: () => void;

  constructor(
    addresses: readonly ResolvedAddress[],
    port: number,
    opts: ConnectOptions,
    resolve: (s: Socket) => void,
    reject: (e: unknown) => void,
  ) {
    this.#addresses = addresses;
    this.#port = port;
    this.#opts = opts;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#onAbort = () => this.#fail(abortError(this.#opts.signal!));
  }

  start(): void {
    this.#deadline = setTimeout(() => this.#fail(new ConnectTimeoutError(describe(this.#addresses[0]!, this.#port), this.#opts.timeout)), this.#opts.timeout);
    this.#opts.signal?.addEventListener('abort', this.#onAbort, { once: true });
    this.#attempt();
  }

  /** Starts the next address, and arms the timer that starts the one after it. */
  #attempt(): void {
    clearTimeout(this.#stagger);
    this.#stagger = undefined;
    const addr = this.#addresses[this.#next++];
    if (!addr) return;
    let sock: Socket;
    try {
      sock = connect({ host: addr.address, port: this.#port, family: addr.family, ...SOCKET_OPTIONS });
    } catch (err) {
      // Invalid input (a port out of range) throws synchronously: one more failed attempt.
      this.#lastError = err;
      if (this.#next < this.#addresses.length) this.#attempt();
      else if (this.#pending.length === 0) this.#fail(err);
      return;
    }
    const a: Attempt = { sock, onConnect: () => this.#win(a), onError: (err) => this.#lose(a, err) };
    this.#pending.push(a);
    sock.on('connect', a.onConnect);
    sock.on('error', a.onError);
    if (this.#next < this.#addresses.length) {
      this.#stagger = setTimeout(() => this.#attempt(), CONNECTION_ATTEMPT_DELAY);
    }
  }

  #lose(a: Attempt, err: Error): void {
    this.#forget(a);
    this.#abandon(a);
    if (this.#done) return;
    this.#lastError = err;
    if (this.#next < this.#addresses.length) this.#attempt();
    else if (this.#pending.length === 0) this.#fail(this.#lastError);
  }

  #win(a: Attempt): void {
    if (this.#done) return;
    this.#forget(a);
    this.#finish();
    // Hand over a socket with no listeners of ours left on it.
    a.sock.removeListener('connect', a.onConnect);
    a.sock.removeListener('error', a.onError);
    this.#resolve(a.sock);
  }

  #fail(err: unknown): void {
    if (this.#done) return;
    this.#finish();
    this.#reject(err);
  }

  #forget(a: Attempt): void {
    const at = this.#pending.indexOf(a);
    if (at >= 0) this.#pending.splice(at, 1);
  }

  #finish(): void {
    this.#done = true;
    clearTimeout(this.#stagger);
    clearTimeout(this.#deadline);
    this.#opts.signal?.removeEventListener('abort', this.#onAbort);
    for (const a of this.#pending) this.#abandon(a);
    this.#pending.length = 0;
  }

  /** Destroys an attempt that lost; it counts once, and a late error on it must not become an uncaught exception. */
  #abandon(a: Attempt): void {
    a.sock.removeListener('connect', a.onConnect);
    a.sock.removeListener('error', a.onError);
    a.sock.on('error', noop);
    a.sock.destroy();
  }
}
