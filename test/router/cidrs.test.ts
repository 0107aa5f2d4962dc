import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseCidr } from '../../src/config/cidr.js';
import { CidrSetBuilder, cidrSetOf } from '../../src/router/cidrs.js';
import { parseIPv4, parseIp } from '../../src/config/ip.js';

test('IPv4 networks match their addresses and nothing else', () => {
  const set = cidrSetOf(['10.0.0.0/8', '192.168.1.0/24', '203.0.113.7']);
  for (const yes of ['10.0.0.0', '10.255.255.255', '192.168.1.77', '203.0.113.7']) assert.ok(set.hasText(yes), yes);
  for (const no of ['11.0.0.0', '9.255.255.255', '192.168.2.1', '203.0.113.8', 'example.com', '']) {
    assert.ok(!set.hasText(no), no);
  }
});

test('0.0.0.0/0 and ::/0 match every address of their family, and only of their family', () => {
  const v4 = cidrSetOf(['0.0.0.0/0']);
  assert.ok(v4.hasText('0.0.0.0') && v4.hasText('255.255.255.255') && v4.hasText('::ffff:1.2.3.4'));
  assert.ok(!v4.hasText('2001:db8::1'));
  const v6 = cidrSetOf(['::/0']);
  assert.ok(v6.hasText('::') && v6.hasText('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'));
  assert.ok(!v6.hasText('1.2.3.4'), 'an IPv4 destination is not in ::/0');
  assert.ok(!v6.hasText('::ffff:1.2.3.4'), 'nor is its IPv4-mapped form: that is the IPv4 address');
});

test('only a network inside ::ffff:0:0/96 holds IPv4 addresses, not a wider one around it', () => {
  for (const [wide, inside] of [['::/64', '::1'], ['::/80', '::2:0:0'], ['::fffe:0:0/95', '::fffe:1:2']] as const) {
    const set = cidrSetOf([wide]);
    assert.ok(!set.hasText('10.1.2.3') && !set.hasText('::ffff:10.1.2.3'), wide);
    assert.ok(set.hasText(inside), `${wide} holds ${inside}`);
  }
  const all4 = cidrSetOf(['::ffff:0:0/96']);
  assert.ok(all4.hasText('10.1.2.3') && all4.hasText('255.255.255.255'));
  assert.ok(!all4.hasText('::1'));
});

test('IPv6 networks, at word boundaries and inside words', () => {
  const set = cidrSetOf(['fd00::/8', '2001:db8:abcd::/48', '2001:db8:1234:5678:9abc::/66', '::1']);
  for (const yes of ['fd12:3456::1', 'FD00::', '2001:db8:abcd:ffff::1', '2001:db8:1234:5678:bfff::1', '::1']) {
    assert.ok(set.hasText(yes), yes);
  }
  for (const no of ['fe00::1', '2001:db8:abce::1', '2001:db8:1234:5678:c000::', '::2', '10.0.0.1']) {
    assert.ok(!set.hasText(no), no);
  }
});

test('an IPv4-mapped IPv6 address meets the IPv4 networks, and mapped networks meet IPv4', () => {
  const set = cidrSetOf(['10.0.0.0/8']);
  assert.ok(set.hasText('::ffff:10.1.2.3'));
  assert.ok(set.hasText('::ffff:a01:203'));
  assert.ok(!set.hasText('::ffff:11.1.2.3'));
  assert.ok(!set.hasText('::10.1.2.3'), 'IPv4-compatible is not IPv4-mapped');
  const mapped = cidrSetOf(['::ffff:192.168.0.0/112']);
  assert.ok(mapped.hasText('192.168.3.4'));
  assert.ok(!mapped.hasText('192.169.0.1'));
});

test('host bits are masked; bad text is reported, not thrown', () => {
  assert.deepEqual(parseCidr('10.1.2.3/8'), { v: 4, start: parseIPv4('10.0.0.0'), prefix: 8 });
  for (const bad of ['10.0.0.0/33', '::/129', '10.0.0/8', '10.0.0.0/', '10.0.0.0/x', 'example.com', '01.2.3.4', 'fe80::1%eth0/64']) {
    assert.equal(typeof parseCidr(bad), 'string', bad);
  }
});

test('nested, duplicate and adjacent networks merge without losing coverage', () => {
  const set = cidrSetOf(['10.0.0.0/8', '10.1.0.0/16', '10.0.0.0/8', '11.0.0.0/8', '2001:db8::/32', '2001:db8:1::/48']);
  assert.equal(set.ranges, 2);
  assert.ok(set.hasText('11.255.255.255') && set.hasText('10.1.2.3') && set.hasText('2001:db8:1::5'));
  assert.ok(!set.hasText('12.0.0.0'));
});

/** Reference: a linear scan over the networks. */
function naive4(nets: [number, number][], ip: number): boolean {
  return nets.some(([start, prefix]) => prefix === 0 || ip >>> (32 - prefix) === start >>> (32 - prefix));
}

test('binary search agrees with a linear scan (IPv4)', () => {
  const u32 = fc.integer({ min: 0, max: 0xffffffff });
  const text = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
  fc.assert(
    fc.property(fc.array(fc.tuple(u32, fc.integer({ min: 0, max: 32 })), { maxLength: 40 }), fc.array(u32, { maxLength: 40 }), (nets, ips) => {
      const b = new CidrSetBuilder();
      for (const [s, p] of nets) {
        const c = parseCidr(`${text(s)}/${p}`);
        assert.notEqual(typeof c, 'string');
        if (typeof c !== 'string') b.add(c);
      }
      const set = b.build();
      // Probe the random addresses and the edges of every network.
      const probes = [...ips, ...nets.flatMap(([s]) => [s, (s + 1) >>> 0, (s - 1) >>> 0])];
      for (const ip of probes) assert.equal(set.hasText(text(ip)), naive4(nets, ip), text(ip));
    }),
    { numRuns: 200 },
  );
});

test('parseIp tells addresses from names', () => {
  assert.deepEqual(parseIp('1.2.3.4'), { v: 4, n: 0x01020304 });
  assert.deepEqual(parseIp('::ffff:1.2.3.4'), { v: 4, n: 0x01020304 });
  assert.equal(parseIp('1.2.3.4.example'), undefined);
  assert.equal(parseIp('256.1.1.1'), undefined);
  assert.equal(parseIp('example.com'), undefined);
  assert.equal(parseIp('a:b'), undefined);
  assert.equal(parseIp('fe80::1%eth0')?.v, 6);
});

test('binary search agrees with a linear scan (IPv6)', () => {
  const toText = (v: bigint) => {
    const words: string[] = [];
    for (let i = 7; i >= 0; i--) words.push(((v >> BigInt(i * 16)) & 0xffffn).toString(16));
    return words.join(':');
  };
  // Few distinct high bits so that networks nest and collide often.
  const addr = fc.tuple(fc.integer({ min: 0, max: 3 }), fc.bigInt({ min: 0n, max: (1n << 126n) - 1n })).map(([hi, lo]) => (BigInt(hi) << 126n) | lo);
  const bit = (v: bigint, p: number) => (p === 0 ? 0n : v >> BigInt(128 - p));
  fc.assert(
    fc.property(fc.array(fc.tuple(addr, fc.integer({ min: 0, max: 128 })), { maxLength: 30 }), fc.array(addr, { maxLength: 30 }), (nets, ips) => {
      const b = new CidrSetBuilder();
      for (const [s, p] of nets) {
        const c = parseCidr(`${toText(s)}/${p}`);
        if (typeof c === 'string') assert.fail(c);
        b.add(c);
      }
      const set = b.build();
      const mask = (1n << 128n) - 1n;
      const probes = [...ips, ...nets.flatMap(([s]) => [s, (s + 1n) & mask, (s - 1n) & mask])];
      for (const ip of probes) {
        const want = nets.some(([s, p]) => bit(s, p) === bit(ip, p));
        assert.equal(set.hasText(toText(ip)), want, toText(ip));
      }
    }),
    { numRuns: 200 },
  );
});
