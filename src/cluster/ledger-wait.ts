// One request's wait for the primary's answers (worker-limits.ts). An HTTP request asks its
// source's share at its head and its user's after the login, a SOCKS request both at once:
// however many questions it asks, a primary that does not answer holds the request for one
// wait in all, not one per question.

export class LedgerWait {
  readonly #budget: number;
  readonly #unanswered: () => void;
  readonly #now: () => number;
  /** ms waited by questions since answered, while none is in flight; questions in flight, and since when one has been. */
  #spent = 0;
  #asking = 0;
  #since = 0;
  #gaveUp = false;

  /** `budget`: ms the request may wait in all; `unanswered` runs once, when a question is the first to go unanswered. */
  constructor(budget: number, unanswered: () => void, now: () => number = () => performance.now()) {
    this.#budget = budget;
    this.#unanswered = unanswered;
    this.#now = now;
  }

  /**
   * A question about to be asked: the ms it may wait for its answer. 0 once the request waited
   * its time, or a question of it went unanswered: it is not asked, the worker's own count decides;
   * only the latter runs `unanswered`.
   */
  begin(): number {
    if (this.#gaveUp) return 0;
    const now = this.#now();
    const left = this.#budget - this.#spent - (this.#asking > 0 ? now - this.#since : 0);
    // Under a millisecond is no wait a timer keeps. Not asked, but nothing went unanswered:
    // the request's time went in answers, so it is not said (the primary did answer).
    if (left < 1) return 0;
    if (this.#asking++ === 0) this.#since = now;
    return left;
  }

  /** A question begun was answered. */
  answered(): void {
    if (--this.#asking === 0) this.#spent += this.#now() - this.#since;
  }

  /** A question begun was not answered in its time: the request's later questions are not asked. */
  timedOut(): void {
    this.answered();
    this.#giveUp();
  }

  #giveUp(): void {
    if (this.#gaveUp) return;
    this.#gaveUp = true;
    this.#unanswered();
  }
}
