// `keyword:` entries: Aho–Corasick (Aho & Corasick 1975), so a name is scanned once whatever
// the number of keywords. We only need "does any keyword occur", so each state keeps one
// flag, inherited along failure links.
//
// Names reach us as latin1 (RFC 1928 gives octets), so a keyword with a character above
// U+00FF can never occur and is left out. The trie's edges live in one Map keyed by
// state * 256 + char (small integer keys, no Map per state). When states × alphabet fits
// DENSE_CELLS, the automaton is flattened into a full transition table over the alphabet of
// the keywords (one array read per character); otherwise matching walks the sparse edges and
// failure links.

const RADIX = 0x100;
const DENSE_CELLS = 1 << 21; // 8 MiB of Int32

export class KeywordMatcher {
  readonly #next = new Map<number, number>();
  readonly #fail: Int32Array;
  readonly #hit: Uint8Array;
  /** char → symbol (0: a char no keyword contains). */
  readonly #symbol = new Uint8Array(RADIX);
  #width = 1;
  #dense: Int32Array | undefined;

  /** `keywords` are lower-case already (names are matched lower-cased). */
  constructor(keywords: Iterable<string>, maxDenseCells = DENSE_CELLS) {
    const hit: number[] = [0];
    let states = 1;
    for (const word of keywords) {
      if (word === '' || /[^\x00-\xff]/.test(word)) continue;
      let s = 0;
      for (let i = 0; i < word.length; i++) {
        const c = word.charCodeAt(i);
        if (this.#symbol[c] === 0) this.#symbol[c] = this.#width++;
        const key = s * RADIX + c;
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
    const order = this.#link(states);
    if (states * this.#width <= maxDenseCells) this.#dense = this.#flatten(order, states);
  }

  /** Breadth-first: a state's failure link is computed after its parent's. Returns BFS order. */
  #link(states: number): number[] {
    const children: number[][] = Array.from({ length: states }, () => []);
    const parentKey = new Float64Array(states);
    for (const [key, t] of this.#next) {
      children[Math.floor(key / RADIX)]!.push(t);
      parentKey[t] = key;
    }
    const queue: number[] = [0];
    for (let head = 0; head < queue.length; head++) {
      const s = queue[head]!;
      if (s !== 0) {
        const key = parentKey[s]!;
        const parent = Math.floor(key / RADIX);
        if (parent !== 0) this.#fail[s] = this.#sparseStep(this.#fail[parent]!, key % RADIX);
        if (this.#hit[this.#fail[s]!] === 1) this.#hit[s] = 1;
      }
      for (const t of children[s]!) queue.push(t);
    }
    return queue;
  }

  /** δ(s, a) = goto(s, a) if the edge exists, else δ(fail(s), a): filled in BFS order. */
  #flatten(order: readonly number[], states: number): Int32Array {
    const w = this.#width;
    const table = new Int32Array(states * w);
    const chars: number[] = [];
    for (let c = 0; c < RADIX; c++) if (this.#symbol[c] !== 0) chars.push(c);
    for (const s of order) {
      for (const c of chars) {
        const a = this.#symbol[c]!;
        const t = this.#next.get(s * RADIX + c);
        table[s * w + a] = t ?? (s === 0 ? 0 : table[this.#fail[s]! * w + a]!);
      }
    }
    this.#next.clear();
    return table;
  }

  #sparseStep(s: number, c: number): number {
    for (;;) {
      const t = this.#next.get(s * RADIX + c);
      if (t !== undefined) return t;
      if (s === 0) return 0;
      s = this.#fail[s]!;
    }
  }

  /** True when some keyword occurs in `text`. */
  matches(text: string): boolean {
    const dense = this.#dense;
    const symbol = this.#symbol;
    const w = this.#width;
    let s = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      // A char no keyword holds sends every state back to the root.
      const a = c < RADIX ? symbol[c]! : 0;
      if (a === 0) s = 0;
      else s = dense !== undefined ? dense[s * w + a]! : this.#sparseStep(s, c);
      if (this.#hit[s] === 1) return true;
    }
    return false;
  }
}
