// One bound for a whole outbound attempt (every hop, every handshake): a signal
// that aborts when the caller's does or when `ms` pass, whichever is first.

import { GatewayError, Rep } from '../errors.js';

export class Deadline {
  readonly signal: AbortSignal;
  readonly #ctl = new AbortController();
  readonly #parent: AbortSignal;
  readonly #timer: NodeJS.Timeout;
  readonly #onParentAbort = (): void => this.#ctl.abort(this.#parent.reason);
  #timedOut = false;

  constructor(parent: AbortSignal, ms: number) {
    this.signal = this.#ctl.signal;
    this.#parent = parent;
    this.#timer = setTimeout(() => {
      this.#timedOut = true;
      this.#ctl.abort(new DOMException('deadline passed', 'TimeoutError'));
    }, ms);
    this.#timer.unref();
    if (parent.aborted) this.#onParentAbort();
    else parent.addEventListener('abort', this.#onParentAbort, { once: true });
  }

  /** True once the time ran out (as opposed to the caller giving up). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  clear(): void {
    clearTimeout(this.#timer);
    this.#parent.removeEventListener('abort', this.#onParentAbort);
  }
}

/** The caller gave up (client gone, gateway closing): nobody will read the reply. */
export class AbortedError extends GatewayError {
  constructor(what: string, options?: ErrorOptions) {
    super('GW_ERR_ABORTED', `${what}: aborted`, Rep.GENERAL_FAILURE, options);
  }
}
