// `domains` entries as the config writes them (`example.com`, `*.example.com`, `full:`,
// `keyword:`, `regexp:`), and the hostname syntax they share with destinations.

import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';

export type DomainEntry =
  | { readonly kind: 'suffix' | 'full' | 'subdomains' | 'keyword'; readonly value: string }
  | { readonly kind: 'regexp'; readonly value: RegExp };

const LABELS = /^[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*$/;

/** A name in normal form (normalizeName) made of labels of 1–63 letters, digits, `-`, `_`: 253 at most. */
function plainLabels(name: string): boolean {
  return name.length <= 253 && LABELS.test(name);
}

// WHATWG URL's "ends in a number": no real name does (no TLD is numeric).
const NUMERIC_LAST_LABEL = /(?:^|\.)(?:0x[0-9a-f]*|[0-9]+)$/i;

/**
 * `127.1`, `0x7f000001`, `2130706433`, `127.0.0.1.`: getaddrinfo reads these as IPv4
 * (inet_aton), so a resolver, ours or an upstream's, would reach an address CIDR rules never saw.
 * Takes a name in normal form (normalizeName).
 */
export function endsInNumber(name: string): boolean {
  return NUMERIC_LAST_LABEL.test(name);
}

/**
 * A hostname every resolver reads as we do: ASCII letters, digits, `-` and `_`, labels of
 * 1–63, at most 253 characters and one trailing dot, not ending in a number. Anything else
 * (an empty label, a NUL, a backslash escape, UTF-8) is read differently by c-ares or
 * getaddrinfo than by the rules: `bad.test..` or `ba\d.test` matched no rule for bad.test and
 * resolved to it, and `127.1` sent to an upstream reached 127.0.0.1 past a rule for 127.0.0.0/8.
 */
export function isHostname(name: string): boolean {
  const n = normalizeName(name);
  return plainLabels(n) && !endsInNumber(n);
}

/** What a request may name as its destination: an IP literal or a hostname; any other is refused before the rules. */
export function isDestinationHost(host: string): boolean {
  return isIP(host) !== 0 || isHostname(host);
}

/** Lower case, one trailing dot dropped: the form every lookup and entry is compared in. */
export function normalizeName(name: string): string {
  const n = name.charCodeAt(name.length - 1) === 46 ? name.slice(0, -1) : name;
  return n.toLowerCase();
}

// eslint-disable-next-line no-control-regex
const isAscii = (text: string): boolean => /^[\x00-\x7f]*$/.test(text);

/**
 * Keywords and regexps are tested on the name as requests carry it, which is ASCII (an IDN
 * label as its xn-- A-label; anything else is refused before the rules): a non-ASCII
 * character in one can never be matched, and converting a fragment to punycode means nothing.
 */
function neverMatches(text: string, body: string): string {
  const label = body.split('.').find((l) => !isAscii(l)) ?? body;
  const ascii = domainToASCII(label);
  const example = ascii === '' || ascii.includes('.') ? '' : ` (a label ${label} arrives as ${ascii})`;
  return `"${text}": a non-ASCII character never matches, names are matched in ASCII as clients send them, an IDN label as its xn-- form${example}; write a domain entry (it may be in Unicode) or match the xn-- form`;
}

/**
 * A name as the config writes it, in the form requests arrive in: Unicode labels as A-labels
 * (`bücher.example` → `xn--bcher-kva.example`, what browsers and curl send), then normalizeName.
 * Undefined when it is not made of plain labels.
 */
export function asciiName(raw: string): string | undefined {
  const ascii = isAscii(raw) ? raw : domainToASCII(raw); // IDN → punycode
  const name = normalizeName(ascii);
  return plainLabels(name) ? name : undefined;
}

/**
 * Why the `dns.hosts` name `key` could never answer a lookup, or undefined. A request may only
 * name a hostname (isHostname) or an IP address, which answers itself; anything else is refused
 * before the rules, so an entry for it is dead. `1.2.3` most of all: getaddrinfo and URLs read
 * it as an IPv4 address.
 */
export function deadHostsName(key: string): string | undefined {
  if (isIP(key) !== 0) return `"${key}" is an IP address, which is never looked up`;
  const name = asciiName(key);
  const refused = 'a request naming it is refused before any rule, so this entry never answers';
  if (name === undefined) return `"${key}" is not a hostname (letters, digits, "-" and "_" in labels of 1-63, 253 at most): ${refused}`;
  if (!endsInNumber(name)) return undefined;
  const v4 = domainToASCII(name); // the URL standard's IPv4 parser, like inet_aton's
  const read = isIP(v4) === 4 ? `: it reads as the IPv4 address ${v4} (getaddrinfo, URLs), and` : ', as only an IPv4 address does:';
  return `"${key}" ends in a number${read} ${refused}`;
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
      const name = asciiName(sub ? body.slice(2) : body);
      if (name === undefined) return `invalid domain "${text}"`;
      // Such names never reach a domain entry: an IP address is matched by cidrs, and a name
      // ending in a number is refused before any rule (it would read as an IPv4 address).
      if (isIP(name) !== 0) return `"${text}" is an IP address, which domain entries never match: write it in cidrs`;
      if (endsInNumber(name)) return `"${text}" ends in a number: a request naming such a host is refused before any rule, so this entry never matches`;
      return { kind: prefix === 'full' ? 'full' : sub ? 'subdomains' : 'suffix', value: name };
    }
    case 'keyword':
      if (body === '') return `empty keyword in "${text}"`;
      if (!isAscii(body)) return neverMatches(text, body);
      return { kind: 'keyword', value: body.toLowerCase() };
    case 'regexp':
      if (!isAscii(body)) return neverMatches(text, body);
      try {
        return { kind: 'regexp', value: new RegExp(body, 'i') };
      } catch (err) {
        return `invalid regexp "${body}": ${(err as Error).message}`;
      }
    default:
      return `unknown domain entry type "${prefix}:" (use full:, keyword:, regexp: or a plain name)`;
  }
}
