// `keyword:` entries: Aho–Corasick (Aho & Corasick 1975), so a name is scanned once whatever
// the number of keywords. We only need "does any keyword occur", so each state keeps one
// flag, inherited along failure links.

// Transitions of every state live in one Map keyed by state * 2^16 + UTF-16 code unit:
// far less memory than a Map per state when there are 100 000 keywords.
const RADIX = 0x10000;

export class KeywordMatcher {
  readonly #next = new Map<number, number>();
  readonly #fail: Int32Array;
  readonly #hit: Uint8Array;

  /** `keywords` are lower-case already (names are matched lower-cased). */
  constructor(keywords: Iterable<string>) {
    const hit: number[] = [0];
    let states = 1;
    for (const word of keywords) {
      if (word === '') continue;
      let s = 0;
      for (let i = 0; i < word.length; i++) {
        const key = s * RADIX + word.charCodeAt(i);
        let t = this.#next.get(key);
        if (t === undefined) {
          t = states++;
          this.#next.set(key, t);
          hit.push(0);
        }
        s = t;
      }
      hit[s] = 1;
    }
    this.#fail = new Int32Array(states);
    this.#hit = Uint8Array.from(hit);
    this.#link(states);
  }

  /** Breadth-first: a state's failure link is computed after its parent's. */
  #link(states: number): void {
    const children: number[][] = Array.from({ length: states }, () => []);
    for (const key of this.#next.keys()) children[Math.floor(key / RADIX)]!.push(key);
    const queue: number[] = [];
    for (const key of children[0]!) queue.push(this.#next.get(key)!);
    const parentKey = new Float64Array(states);
    for (const [key, t] of this.#next) parentKey[t] = key;
    for (let head = 0; head < queue.length; head++) {
      const s = queue[head]!;
      const key = parentKey[s]!;
      const parent = Math.floor(key / RADIX);
      if (parent !== 0) this.#fail[s] = this.#step(this.#fail[parent]!, key % RADIX);
      if (this.#hit[this.#fail[s]!] === 1) this.#hit[s] = 1;
      for (const k of children[s]!) queue.push(this.#next.get(k)!);
    }
  }

  #step(s: number, c: number): number {
    for (;;) {
      const t = this.#next.get(s * RADIX + c);
      if (t !== undefined) return t;
      if (s === 0) return 0;
      s = this.#fail[s]!;
    }
  }

  /** True when some keyword occurs in `text`. */
  matches(text: string): boolean {
    let s = 0;
    for (let i = 0; i < text.length; i++) {
      s = this.#step(s, text.charCodeAt(i));
      if (this.#hit[s] === 1) return true;
    }
    return false;
  }
}
