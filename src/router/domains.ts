// `domains` entries. Suffix and `full:` entries sit in hash sets probed once per label of the
// name (O(labels), whatever the list size); `keyword:` goes to Aho–Corasick; `regexp:` stays a
// list of RegExps (their count is the user's choice; each one is compiled once).

import { parseDomainEntry, type DomainEntry } from '../config/domains.js';
import { KeywordMatcher } from './keywords.js';

export class DomainMatcherBuilder {
  readonly #suffix = new Set<string>();
  readonly #full = new Set<string>();
  readonly #sub = new Set<string>();
  readonly #keywords = new Set<string>();
  readonly #regexps: RegExp[] = [];

  add(e: DomainEntry): void {
    if (e.kind === 'regexp') this.#regexps.push(e.value);
    else if (e.kind === 'suffix') this.#suffix.add(e.value);
    else if (e.kind === 'full') this.#full.add(e.value);
    else if (e.kind === 'subdomains') this.#sub.add(e.value);
    else this.#keywords.add(e.value);
  }

  get size(): number {
    return this.#suffix.size + this.#full.size + this.#sub.size + this.#keywords.size + this.#regexps.length;
  }

  build(): DomainMatcher {
    const kw = this.#keywords.size > 0 ? new KeywordMatcher(this.#keywords) : undefined;
    return new DomainMatcher({ suffix: this.#suffix, full: this.#full, sub: this.#sub }, kw, this.#regexps);
  }
}

/** Immutable once built. `matches` takes a name already passed through `normalizeName`. */
export class DomainMatcher {
  readonly #suffix: ReadonlySet<string>;
  readonly #full: ReadonlySet<string>;
  readonly #sub: ReadonlySet<string>;
  readonly #parents: boolean;
  readonly #keywords: KeywordMatcher | undefined;
  readonly #regexps: readonly RegExp[];

  constructor(
    sets: { suffix: ReadonlySet<string>; full: ReadonlySet<string>; sub: ReadonlySet<string> },
    kw: KeywordMatcher | undefined,
    re: readonly RegExp[],
  ) {
    this.#suffix = sets.suffix;
    this.#full = sets.full;
    this.#sub = sets.sub;
    this.#parents = sets.suffix.size > 0 || sets.sub.size > 0;
    this.#keywords = kw;
    this.#regexps = re;
  }

  matches(name: string): boolean {
    if (this.#full.has(name) || this.#suffix.has(name)) return true;
    if (this.#parents) {
      // Probe every parent: a.b.example.com → b.example.com → example.com → com.
      for (let dot = name.indexOf('.'); dot >= 0; dot = name.indexOf('.', dot + 1)) {
        const parent = name.slice(dot + 1);
        if (this.#suffix.has(parent) || this.#sub.has(parent)) return true;
      }
    }
    if (this.#keywords?.matches(name)) return true;
    for (const re of this.#regexps) if (re.test(name)) return true;
    return false;
  }
}

/** Compiles pre-validated entries; throws on an invalid one. */
export function domainMatcherOf(entries: readonly string[]): DomainMatcher {
  const b = new DomainMatcherBuilder();
  for (const e of entries) {
    const d = parseDomainEntry(e);
    if (typeof d === 'string') throw new TypeError(d);
    b.add(d);
  }
  return b.build();
}
