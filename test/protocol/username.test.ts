// The crawler-session username grammar `USER(-KEY-VALUE)*` (PRODUCT.md "Crawler sessions"):
// example usernames, then properties over random ones (fast-check).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { filterParams, formatUsername, lifetimeMs, parseUsername } from '../../src/protocol/username.js';

const RUNS = { numRuns: 500 };

const token = fc.stringMatching(/^[A-Za-z0-9_]{1,12}$/);
/** A configured user: anything without "-" (the config refuses "-" in usernames). */
const user = fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme' }).filter((s) => !s.includes('-'));
const duration = fc.tuple(fc.integer({ min: 1, max: 100_000 }), fc.constantFrom('ms', 's', 'm', 'h')).map(([n, u]) => `${n}${u}`);
/** Parameters with distinct keys; `lifetime`, when present, a positive duration. */
const params = fc
  .tuple(
    fc.uniqueArray(fc.tuple(token.filter((k) => k !== 'lifetime'), token), { selector: ([k]) => k, maxLength: 6 }),
    fc.option(duration, { nil: undefined }),
  )
  .map(([pairs, lifetime]) => {
    const out: Record<string, string> = Object.fromEntries(pairs);
    if (lifetime !== undefined) out['lifetime'] = lifetime;
    return out;
  });

test('examples: the user, every parameter, and the malformed ones refused', () => {
  assert.deepEqual(parseUsername('alice-session-XYZ-lifetime-5m-country-de'), {
    user: 'alice',
    params: { session: 'XYZ', lifetime: '5m', country: 'de' },
  });
  assert.deepEqual(parseUsername('alice'), { user: 'alice', params: {} });
  assert.deepEqual(parseUsername('zoë-city-new_york'), { user: 'zoë', params: { city: 'new_york' } });
  assert.equal(lifetimeMs({ lifetime: '5m' }), 300_000);
  assert.deepEqual(filterParams({ session: 'a', lifetime: '1s', country: 'de', asn: '7' }), [['country', 'de'], ['asn', '7']]);
  for (const bad of ['', '-', 'alice-', 'alice-session', 'alice-session-', '-session-x', 'alice--x', 'alice-a-1-a-2', 'alice-k-v w', 'alice-k-é', 'alice-lifetime-soon', 'alice-lifetime-0m', 'alice-__proto__-1-__proto__-2']) {
    assert.equal(parseUsername(bad), undefined, JSON.stringify(bad));
  }
});

test('property: a well-formed username reads back as the user and parameters it was made of', () => {
  fc.assert(
    fc.property(user, params, (u, p) => {
      assert.deepEqual(parseUsername(formatUsername(u, p)), { user: u, params: p });
    }),
    RUNS,
  );
});

test('property: a broken parameter part is refused', () => {
  const breakage = fc.oneof(
    fc.constant((s: string) => `${s}-`), // a dangling dash
    token.map((k) => (s: string) => `${s}-${k}`), // a key without a value
    fc.constantFrom('.', ' ', ':', '@', 'é', '/', '%').map((c) => (s: string) => `${s}-k${c}-v`), // a key with a foreign character
    fc.constantFrom('.', ' ', ':', '@', 'é', '/', '%').map((c) => (s: string) => `${s}-k-v${c}`), // a value with one
    fc.constant((s: string) => `${s}-dup-1-dup-2`), // a key twice
    fc.constant((s: string) => `${s}--`), // empty fields
  );
  fc.assert(
    fc.property(user, params.filter((p) => !('dup' in p) && !('k' in p)), breakage, (u, p, brk) => {
      assert.equal(parseUsername(brk(formatUsername(u, p))), undefined);
    }),
    RUNS,
  );
});

test('property: any string parses or is refused without throwing, and what parses is canonical', () => {
  const alphabet = fc.constantFrom('a', 'Z', '0', '_', '-', '-', 's', 'm', '5', '.', 'é', ' ', '\u0000');
  const text = fc.oneof(fc.string({ maxLength: 40 }), fc.string({ unit: alphabet, maxLength: 40 }), fc.string({ unit: 'binary', maxLength: 40 }));
  fc.assert(
    fc.property(text, (s) => {
      const parsed = parseUsername(s);
      if (parsed === undefined) return;
      assert.ok(parsed.user.length > 0 && !parsed.user.includes('-'));
      for (const [k, v] of Object.entries(parsed.params)) assert.match(`${k}=${v}`, /^[A-Za-z0-9_]+=[A-Za-z0-9_]+$/);
      assert.deepEqual(parseUsername(formatUsername(parsed.user, parsed.params)), parsed);
    }),
    { numRuns: 2_000 },
  );
});
