// One bound for a whole outbound attempt (every hop, every handshake): a signal
// that aborts when the caller's does or when `ms` pass, whichever is first.

import type { Cancellation } from '../dns/types.js';
import { GatewayError, Rep } from '../errors.js';

/** A Deadline's own reason for aborting, made once: told apart from its caller's by identity. */
const DEADLINE_PASSED = new DOMException('deadline passed', 'TimeoutError');

export class Deadline {
  readonly signal: AbortSignal;
  readonly #ctl = new AbortController();
  readonly #parent: AbortSignal;
  readonly #timer: NodeJS.Timeout;
  readonly #onParentAbort = (): void => {
    // The attempt this one is part of ran out of time (a chain's hop dialing for the next
    // proxy): so has this one, and whatever it was waiting for is why.
    if (this.#parent.reason === DEADLINE_PASSED) this.#timedOut = true;
    this.#ctl.abort(this.#parent.reason);
  };
  #timedOut = false;

  constructor(parent: AbortSignal, ms: number) {
    this.signal = this.#ctl.signal;
    this.#parent = parent;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#ctl.abort(DEADLINE_PASSED);
    }, ms);
    this.#timer.unref();
    if (parent.aborted) this.#onParentAbort();
    else parent.addEventListener('abort', this.#onParentAbort, { once: true });
  }

  /** True once the time ran out, this one's or that of the attempt it is part of (as opposed to the caller giving up). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#parent.removeEventListener('abort', this.#onParentAbort);
  }
}

/**
 * `work` until `signal` aborts: then a rejection with its reason, and `work` is left to
 * finish (or fail) on its own. For steps that take no signal themselves (a name lookup).
 * A client connection is a Cancellation too: waiting on it makes no AbortSignal.
 */
export function until<T>(work: Promise<T>, signal: Cancellation): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {}); // its own failure, later, is nobody's
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      work.catch(() => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** The caller gave up (client gone, gateway closing): nobody will read the reply. */
export class AbortedError extends GatewayError {
  /** The upstream had answered all before the request and was waiting on the destination. */
  readonly awaitingDestination: boolean;
  constructor(what: string, options?: ErrorOptions, awaitingDestination = false) {
    super('GW_ERR_ABORTED', `${what}: aborted`, Rep.GENERAL_FAILURE, options);
    this.awaitingDestination = awaitingDestination;
  }
}
