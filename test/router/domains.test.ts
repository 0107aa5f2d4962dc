import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { normalizeName, parseDomainEntry } from '../../src/config/domains.js';
import { domainMatcherOf } from '../../src/router/domains.js';
import { KeywordMatcher } from '../../src/router/keywords.js';

const matches = (entries: string[], host: string) => domainMatcherOf(entries).matches(normalizeName(host));

test('a plain entry matches the name and every subdomain, not look-alikes', () => {
  const e = ['example.com'];
  for (const yes of ['example.com', 'www.example.com', 'a.b.c.example.com']) assert.ok(matches(e, yes), yes);
  for (const no of ['badexample.com', 'example.com.evil', 'example.co', 'com', 'xample.com']) assert.ok(!matches(e, no), no);
});

test('full: matches only that name; *. only the subdomains', () => {
  assert.ok(matches(['full:wiki.example.com'], 'wiki.example.com'));
  assert.ok(!matches(['full:wiki.example.com'], 'a.wiki.example.com'));
  assert.ok(!matches(['full:wiki.example.com'], 'example.com'));
  assert.ok(matches(['*.example.com'], 'www.example.com'));
  assert.ok(matches(['*.example.com'], 'a.b.example.com'));
  assert.ok(!matches(['*.example.com'], 'example.com'));
  assert.ok(matches(['domain:example.com'], 'example.com'), 'domain: is the plain form');
});

test('case and one trailing dot are ignored, on both sides', () => {
  assert.ok(matches(['Example.COM.'], 'www.EXAMPLE.com.'));
  assert.ok(matches(['full:WIKI.example.com'], 'wiki.Example.Com.'));
  assert.ok(matches(['keyword:AdServer'], 'x.ADSERVER.net'));
  assert.ok(matches(['regexp:^api[0-9]+\\.Example\\.com$'], 'API12.example.COM.'));
});

test('keyword: matches anywhere in the name; regexp: is searched, not anchored', () => {
  const e = ['keyword:track', 'regexp:\\d{3}\\.cdn\\.'];
  assert.ok(matches(e, 'tracker.example.com'));
  assert.ok(matches(e, 'a.b.backtrack'));
  assert.ok(matches(e, 'x-123.cdn.example'));
  assert.ok(!matches(e, 'tra.ck.example.com'));
  assert.ok(!matches(e, '12.cdn.example'));
});

test('a top-level entry covers its whole zone; an IDN entry matches its punycode', () => {
  assert.ok(matches(['cn'], 'www.example.cn'));
  assert.ok(!matches(['cn'], 'www.example.com'));
  assert.ok(matches(['bücher.de'], 'www.xn--bcher-kva.de'));
});

test('keyword: and regexp: see the name as clients send it, an IDN label as its xn-- form', () => {
  assert.ok(matches(['keyword:xn--bcher'], 'www.xn--bcher-kva.example'));
  assert.ok(matches(['regexp:^xn--bcher-kva\\.'], 'xn--bcher-kva.example'));
  // A non-ASCII character can never be in such a name: an error, not an entry that never matches.
  for (const dead of ['keyword:bücher', 'regexp:^bücher\\.example$', 'keyword:☃']) {
    const why = parseDomainEntry(dead);
    assert.equal(typeof why, 'string', dead);
    assert.match(String(why), /non-ASCII character never matches.*xn--/, dead);
  }
  assert.match(String(parseDomainEntry('keyword:bücher')), /bücher arrives as xn--bcher-kva/);
});

test('entries no request can reach are errors: an IP address (cidrs match those), a name ending in a number', () => {
  for (const dead of ['10.0.0.1', 'full:10.0.0.1', '*.1.2.3', 'example.1', 'domain:0x7f']) {
    assert.equal(typeof parseDomainEntry(dead), 'string', dead);
  }
  assert.match(String(parseDomainEntry('10.0.0.1')), /IP address.*cidrs/);
  assert.match(String(parseDomainEntry('full:1.2.3')), /ends in a number/);
  // A number inside a name is fine; only the last label decides.
  assert.deepEqual(parseDomainEntry('1.2.example'), { kind: 'suffix', value: '1.2.example' });
  assert.deepEqual(parseDomainEntry('*.3com.example'), { kind: 'subdomains', value: '3com.example' });
});

test('invalid entries are explained', () => {
  for (const bad of ['', 'exa mple.com', 'a..b', 'keyword:', 'regexp:(', 'foo:bar', `${'a'.repeat(64)}.com`, '.']) {
    assert.equal(typeof parseDomainEntry(bad), 'string', bad);
  }
});

test('Aho–Corasick agrees with String.includes', () => {
  const word = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '.'), minLength: 1, maxLength: 5 });
  fc.assert(
    fc.property(fc.array(word, { maxLength: 12 }), fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', '.'), maxLength: 16 }), { maxLength: 20 }), (words, texts) => {
      const dense = new KeywordMatcher(words);
      const sparse = new KeywordMatcher(words, 0);
      for (const t of texts) {
        const want = words.some((w) => t.includes(w));
        assert.equal(dense.matches(t), want, `${JSON.stringify(words)} in ${t}`);
        assert.equal(sparse.matches(t), want, `${JSON.stringify(words)} in ${t} (sparse)`);
      }
    }),
    { numRuns: 300 },
  );
});

test('keywords outside latin1 never match; such chars in a name restart the scan', () => {
  for (const cap of [undefined, 0]) {
    const m = new KeywordMatcher(['ab', 'ü', 'x☃'], cap);
    assert.ok(m.matches('zzü'));
    assert.ok(!m.matches('a☃b'));
    assert.ok(m.matches('☃ab'));
    assert.ok(!m.matches('x☃'));
  }
});

test('100 000 suffix entries still match by labels', () => {
  const entries = Array.from({ length: 100_000 }, (_, i) => `host${i}.example${i % 97}.com`);
  const m = domainMatcherOf(entries);
  assert.ok(m.matches(`a.host99999.example${99_999 % 97}.com`));
  assert.ok(!m.matches(`host99999.example${(99_999 % 97) + 1}.com`));
  assert.ok(!m.matches('host100000.example0.com'));
});
