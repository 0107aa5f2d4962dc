// The egress matcher on its own: every form of a denied address, without dialing any of them.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { cidrSetOf } from '../../src/router/cidrs.js';
import { addressForms, compileEgress, EGRESS_RANGES, OPEN_EGRESS } from '../../src/outbound/egress.js';
import { EGRESS_NAMES } from '../../src/config/types.js';
import { defaultEgressDeny } from '../../src/config/normalize.js';

const ALL = compileEgress(['loopback', 'private', 'link-local', 'metadata', 'unspecified']);

test('every name of egress.deny has its ranges, and each name denies what PRODUCT.md lists', () => {
  assert.deepEqual(Object.keys(EGRESS_RANGES).sort(), [...EGRESS_NAMES].sort());
  const cases: Record<string, { denied: string[]; allowed: string[] }> = {
    // 0.0.0.0 and :: as a destination are this host (the kernel dials loopback for them).
    loopback: { denied: ['127.0.0.1', '127.255.255.254', '::1', '0.0.0.0', '::', '::ffff:0.0.0.0'], allowed: ['128.0.0.1', '::2', '10.0.0.1', '0.1.2.3'] },
    private: {
      denied: ['10.1.2.3', '172.16.0.1', '172.31.255.255', '192.168.1.1', '100.64.0.1', '100.127.255.255', 'fc00::1', 'fdff::1'],
      allowed: ['172.32.0.1', '172.15.255.255', '100.128.0.1', '192.169.0.1', 'fe00::1', '127.0.0.1'],
    },
    'link-local': { denied: ['169.254.0.1', '169.254.169.254', 'fe80::1', 'febf::1'], allowed: ['169.255.0.1', 'fec0::1'] },
    metadata: {
      denied: ['169.254.169.254', '100.100.100.200', 'fd00:ec2::254', 'fd20:ce::254', 'FD20:CE:0:0:0:0:0:254'],
      allowed: ['169.254.169.253', '100.100.100.201', 'fd00:ec2::253', 'fd20:ce::253'],
    },
    unspecified: { denied: ['0.0.0.0', '0.1.2.3', '::'], allowed: ['1.0.0.0', '::1'] },
  };
  for (const [name, { denied, allowed }] of Object.entries(cases)) {
    const guard = compileEgress([name]);
    for (const a of denied) assert.equal(guard.denies(a), true, `${name} denies ${a}`);
    for (const a of allowed) assert.equal(guard.denies(a), false, `${name} allows ${a}`);
  }
});

test('IPv4-mapped, IPv4-compatible and NAT64 forms of a denied IPv4 address are denied', () => {
  for (const a of [
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:169.254.169.254',
    '::127.0.0.1',
    '::a9fe:a9fe',
    '::10.0.0.1',
    '64:ff9b::169.254.169.254',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::10.1.1.1',
    '64:ff9b::100.100.100.200',
    '0:0:0:0:0:FFFF:192.168.0.1',
  ]) {
    assert.equal(ALL.denies(a), true, a);
  }
  for (const a of ['::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '::8.8.8.8', '64:ff9b:1::a9fe:a9fe', '2001:db8::a9fe:a9fe']) {
    assert.equal(ALL.denies(a), false, a);
  }
  // A CIDR entry is matched through the embedded forms too.
  const one = compileEgress(['127.0.0.2/32']);
  for (const a of ['127.0.0.2', '::ffff:127.0.0.2', '::127.0.0.2', '64:ff9b::7f00:2']) assert.equal(one.denies(a), true, a);
  assert.equal(one.denies('127.0.0.3'), false);
});

test('an IPv6 network (::/0) denies IPv6 addresses only: an IPv4-mapped one is its IPv4 address', () => {
  const v6 = compileEgress(['::/0']);
  for (const a of ['::1', '2001:db8::1', '::127.0.0.1', '64:ff9b::7f00:1']) assert.equal(v6.denies(a), true, a);
  for (const a of ['127.0.0.1', '::ffff:127.0.0.1', '[::ffff:7f00:1]', '8.8.8.8']) assert.equal(v6.denies(a), false, a);
  assert.equal(ALL.denies('::1', cidrSetOf(['::/0'])), false, 'a rule for ::/0 lifts the guard for IPv6');
  assert.equal(ALL.denies('::ffff:127.0.0.1', cidrSetOf(['::/0'])), true, 'but not for an IPv4 address');
});

test('the unspecified address is denied with the loopback address of its own family: 0.0.0.0 with 127.0.0.1, :: with ::1', () => {
  const v4 = compileEgress(['127.0.0.0/8']);
  for (const a of ['0.0.0.0', '::ffff:0.0.0.0']) assert.equal(v4.denies(a), true, a);
  for (const a of ['::', '::1']) assert.equal(v4.denies(a), false, a);
  const v6 = compileEgress(['::1/128']);
  assert.equal(v6.denies('::'), true);
  for (const a of ['0.0.0.0', '127.0.0.1']) assert.equal(v6.denies(a), false, a);
});

test('the rule that chose direct lifts the guard for the addresses in its own cidrs only', () => {
  const lift = cidrSetOf(['10.8.0.0/16', '127.0.0.2/32']);
  assert.equal(ALL.denies('10.8.3.3', lift), false);
  assert.equal(ALL.denies('::ffff:10.8.3.3', lift), false, 'mapped, as the router sees it');
  assert.equal(ALL.denies('10.9.0.1', lift), true);
  assert.equal(ALL.denies('169.254.169.254', lift), true);
  assert.equal(ALL.denies('127.0.0.2', lift), false);
});

test('anything that is not an address is denied; an empty list is no guard at all', () => {
  assert.equal(ALL.denies('example.com'), true);
  assert.equal(ALL.denies(''), true);
  assert.equal(ALL.denies('8.8.8.8'), false);
  assert.equal(compileEgress([]), OPEN_EGRESS);
  assert.equal(compileEgress([]).denies('169.254.169.254'), false);
  assert.deepEqual(addressForms('[::1]'), addressForms('::1'));
});

test('defaults: link-local and metadata on loopback listeners, everything internal otherwise', () => {
  const local = compileEgress(defaultEgressDeny([{ host: '127.0.0.1', port: 1080, protocols: ['socks5'] }]));
  assert.equal(local.denies('169.254.169.254'), true);
  assert.equal(local.denies('127.0.0.1'), false, 'a loopback gateway serves its own machine');
  const open = compileEgress(defaultEgressDeny([{ host: '0.0.0.0', port: 1080, protocols: ['socks5'] }]));
  for (const a of ['127.0.0.1', '10.0.0.1', '::', '0.0.0.0', 'fd00::1', '::ffff:192.168.1.1']) assert.equal(open.denies(a), true, a);
  assert.equal(open.denies('93.184.216.34'), false);
});

test('each refusal is counted through the hook the gateway gives', () => {
  const seen: string[] = [];
  const guard = compileEgress(['loopback'], (c) => seen.push(c));
  guard.denied('udp');
  assert.deepEqual(seen, ['udp']);
});
