// `domains` entries. Suffix and `full:` entries sit in hash sets probed once per label of the
// name (O(labels), whatever the list size); `keyword:` goes to Aho–Corasick; `regexp:` stays a
// list of RegExps (their count is the user's choice; each one is compiled once).

import { domainToASCII } from 'node:url';
import { KeywordMatcher } from './keywords.js';

export type DomainEntry =
  | { readonly kind: 'suffix' | 'full' | 'subdomains' | 'keyword'; readonly value: string }
  | { readonly kind: 'regexp'; readonly value: RegExp };

const LABELS = /^[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*$/;

/** A name in normal form (normalizeName) made of labels of 1–63 letters, digits, `-`, `_`: 253 at most. */
function plainLabels(name: string): boolean {
  return name.length <= 253 && LABELS.test(name);
}

/**
 * A hostname every resolver reads as we do: ASCII letters, digits, `-` and `_`, labels of
 * 1–63, at most 253 characters and one trailing dot. Anything else (an empty label, a NUL,
 * a backslash escape, UTF-8) is read differently by c-ares or getaddrinfo than by the rules:
 * `bad.test..` or `ba\d.test` matched no rule for bad.test and resolved to it.
 */
export function isHostname(name: string): boolean {
  return plainLabels(normalizeName(name));
}

/** Lower case, one trailing dot dropped: the form every lookup and entry is compared in. */
export function normalizeName(name: string): string {
  const n = name.charCodeAt(name.length - 1) === 46 ? name.slice(0, -1) : name;
  return n.toLowerCase();
}

function normalizeEntryName(raw: string): string | undefined {
  // eslint-disable-next-line no-control-regex
  const ascii = /^[\x00-\x7f]*$/.test(raw) ? raw : domainToASCII(raw); // IDN → punycode
  const name = normalizeName(ascii);
  return plainLabels(name) ? name : undefined;
}

/**
 * One `domains` entry: `example.com` (that name and its subdomains; `domain:` accepted too),
 * `*.example.com` (subdomains only), `full:NAME`, `keyword:WORD` or `regexp:RE`.
 * Returns the entry, or why it is invalid.
 */
export function parseDomainEntry(text: string): DomainEntry | string {
  const colon = text.indexOf(':');
  const prefix = colon < 0 ? '' : text.slice(0, colon);
  const body = colon < 0 ? text : text.slice(colon + 1);
  switch (prefix) {
    case '':
    case 'domain':
    case 'full': {
      const sub = prefix !== 'full' && body.startsWith('*.');
      const name = normalizeEntryName(sub ? body.slice(2) : body);
      if (name === undefined) return `invalid domain "${text}"`;
      return { kind: prefix === 'full' ? 'full' : sub ? 'subdomains' : 'suffix', value: name };
    }
    case 'keyword':
      if (body === '') return `empty keyword in "${text}"`;
      return { kind: 'keyword', value: body.toLowerCase() };
    case 'regexp':
      try {
        return { kind: 'regexp', value: new RegExp(body, 'i') };
      } catch (err) {
        return `invalid regexp "${body}": ${(err as Error).message}`;
      }
    default:
      return `unknown domain entry type "${prefix}:" (use full:, keyword:, regexp: or a plain name)`;
  }
}

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
