import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { parseIPv4, parseIPv6 } from '../../src/config/ip.js';

/** Reference: WHATWG URL parsing canonicalizes to pure hex; expand that by splitting. */
function referenceWords(text: string): number[] {
  const host = new URL(`http://[${text}]/`).hostname.slice(1, -1);
  const [head, tail] = host.includes('::') ? host.split('::') : [host, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t].map((x) => parseInt(x, 16));
  return [0, 1, 2, 3].map((k) => groups[2 * k]! * 0x10000 + groups[2 * k + 1]!);
}

test('IPv6 parsing accepts exactly what net.isIPv6 accepts (zone-free)', () => {
  const unit = fc.constantFrom('0', '1', 'a', 'F', 'ffff', ':', ':', '::', '.', '1.2.3.4', '255', '12345');
  fc.assert(
    fc.property(fc.array(unit, { maxLength: 14 }).map((a) => a.join('')), (text) => {
      assert.equal(parseIPv6(text) !== undefined, isIPv6(text), text);
    }),
    { numRuns: 5_000 },
  );
});

test('IPv6 parsing gives the same words as the URL parser, whatever the spelling', () => {
  const word = fc.integer({ min: 0, max: 0xffff });
  fc.assert(
    fc.property(fc.array(word, { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 7 }), fc.integer({ min: 0, max: 8 }), fc.boolean(), (ws, at, len, v4tail) => {
      // Zero a run and write it as "::" (when it is at least one group long).
      const run = Math.min(len, 8 - at);
      for (let k = at; k < at + run; k++) ws[k] = 0;
      let parts = ws.map((x) => x.toString(16));
      if (v4tail) parts = [...parts.slice(0, 6), `${ws[6]! >> 8}.${ws[6]! & 255}.${ws[7]! >> 8}.${ws[7]! & 255}`];
      const full = parts.join(':');
      const text = run > 0 && at + run <= parts.length ? `${parts.slice(0, at).join(':')}::${parts.slice(at + run).join(':')}` : full;
      assert.ok(isIPv6(text), text);
      assert.deepEqual([...parseIPv6(text)!], referenceWords(text), text);
    }),
    { numRuns: 2_000 },
  );
});

test('IPv4 parsing agrees with net.isIPv4', () => {
  const unit = fc.constantFrom('0', '1', '9', '25', '255', '256', '00', '.', '.', 'a', ' ');
  fc.assert(
    fc.property(fc.array(unit, { maxLength: 10 }).map((a) => a.join('')), (text) => {
      assert.equal(parseIPv4(text) >= 0, isIPv4(text), text);
    }),
    { numRuns: 5_000 },
  );
  assert.equal(parseIPv4('255.255.255.255'), 0xffffffff);
});

test('zones are ignored; an empty zone is not an address', () => {
  assert.deepEqual([...parseIPv6('fe80::1%eth0')!], [0xfe800000, 0, 0, 1]);
  assert.equal(parseIPv6('fe80::1%'), undefined);
});
