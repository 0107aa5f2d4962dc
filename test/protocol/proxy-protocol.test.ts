// The PROXY protocol decoder (HAProxy's proxy-protocol.txt, v1 and v2): vectors written out by
// hand from the spec, every split, malformed and oversize input, and fast-check properties.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError } from '../../src/errors.js';
import {
  NEED_DATA,
  V1_MAX_LENGTH,
  V2_MAX_LENGTH,
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  type ProxyHeader,
} from '../../src/protocol/proxy-protocol.js';

const SIG = '0d0a0d0a000d0a515549540a';
const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const text = (s: string): Buffer => Buffer.from(s, 'latin1');

const VALID: Array<{ name: string; wire: Buffer; header: ProxyHeader }> = [
  {
    name: 'v1 TCP4',
    wire: text('PROXY TCP4 192.0.2.1 198.51.100.7 54321 443\r\n'),
    header: { version: 1, command: 'proxy', family: 'inet', source: { host: '192.0.2.1', port: 54321 }, dest: { host: '198.51.100.7', port: 443 } },
  },
  {
    name: 'v1 TCP6',
    wire: text('PROXY TCP6 2001:db8::1 2001:db8::2 8080 80\r\n'),
    header: { version: 1, command: 'proxy', family: 'inet6', source: { host: '2001:db8::1', port: 8080 }, dest: { host: '2001:db8::2', port: 80 } },
  },
  { name: 'v1 UNKNOWN', wire: text('PROXY UNKNOWN\r\n'), header: { version: 1, command: 'proxy', family: 'unspec' } },
  {
    // §2.1's worst case: exactly 107 bytes; whatever follows UNKNOWN is ignored.
    name: 'v1 UNKNOWN at the 107-byte limit',
    wire: text(`PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`),
    header: { version: 1, command: 'proxy', family: 'unspec' },
  },
  {
    name: 'v2 PROXY AF_INET',
    wire: hex(`${SIG} 21 11 000c c0000201 c6336407 d431 01bb`),
    header: { version: 2, command: 'proxy', family: 'inet', source: { host: '192.0.2.1', port: 54321 }, dest: { host: '198.51.100.7', port: 443 } },
  },
  {
    // An AWS NLB sends a TLV 0xEA (subtype 0x01, the VPC endpoint id): skipped.
    name: 'v2 PROXY AF_INET with a TLV',
    wire: hex(`${SIG} 21 11 0014 c0000201 c6336407 d431 01bb ea0005 01 76706365`),
    header: { version: 2, command: 'proxy', family: 'inet', source: { host: '192.0.2.1', port: 54321 }, dest: { host: '198.51.100.7', port: 443 } },
  },
  {
    name: 'v2 PROXY AF_INET6',
    wire: hex(`${SIG} 21 21 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 1f90 0050`),
    header: { version: 2, command: 'proxy', family: 'inet6', source: { host: '2001:db8::1', port: 8080 }, dest: { host: '2001:db8::2', port: 80 } },
  },
  { name: 'v2 LOCAL', wire: hex(`${SIG} 20 00 0000`), header: { version: 2, command: 'local', family: 'unspec' } },
  { name: 'v2 LOCAL with a block', wire: hex(`${SIG} 20 11 000c c0000201 c6336407 d431 01bb`), header: { version: 2, command: 'local', family: 'unspec' } },
  { name: 'v2 PROXY AF_UNSPEC', wire: hex(`${SIG} 21 00 0000`), header: { version: 2, command: 'proxy', family: 'unspec' } },
  { name: 'v2 PROXY AF_UNIX', wire: hex(`${SIG} 21 31 00d8 ${'00'.repeat(216)}`), header: { version: 2, command: 'proxy', family: 'unspec' } },
  {
    // §2.2, transport UNSPEC: "The receiver should ignore address information", whatever the family.
    name: 'v2 PROXY AF_INET over transport UNSPEC',
    wire: hex(`${SIG} 21 10 000c c0000201 c6336407 d431 01bb`),
    header: { version: 2, command: 'proxy', family: 'unspec' },
  },
  {
    name: 'v2 PROXY AF_INET6 over transport UNSPEC',
    wire: hex(`${SIG} 21 20 0024 20010db8000000000000000000000001 20010db8000000000000000000000002 1f90 0050`),
    header: { version: 2, command: 'proxy', family: 'unspec' },
  },
];

test('valid headers decode, with the bytes after them left alone', () => {
  assert.equal(VALID[3]!.wire.length, V1_MAX_LENGTH);
  const after = text('\x05\x01\x00');
  for (const { name, wire, header } of VALID) {
    assert.deepEqual(decodeProxyHeader(Buffer.concat([wire, after])), { value: header, size: wire.length }, name);
  }
});

test('v1 TCP6 addresses decode in RFC 5952 form, as v2 gives them: one spelling per address', () => {
  const wire = text('PROXY TCP6 ::FFFF:7F00:1 2001:DB8:0:0::7 40000 1080\r\n');
  const decoded = decodeProxyHeader(wire);
  assert.notEqual(decoded, NEED_DATA);
  const value = (decoded as { value: ProxyHeader }).value;
  assert.deepEqual(value, { version: 1, command: 'proxy', family: 'inet6', source: { host: '::ffff:127.0.0.1', port: 40000 }, dest: { host: '2001:db8::7', port: 1080 } });
});

test('every split of a header decodes the same: each proper prefix needs data', () => {
  for (const { name, wire, header } of VALID) {
    for (let cut = 0; cut < wire.length; cut++) assert.equal(decodeProxyHeader(wire.subarray(0, cut)), NEED_DATA, `${name} cut at ${cut}`);
    assert.deepEqual(decodeProxyHeader(wire), { value: header, size: wire.length }, name);
  }
});

const MALFORMED: Array<[string, Buffer]> = [
  ['no header: a SOCKS5 greeting', hex('050100')],
  ['no header: an HTTP request', text('GET http://example.com/ HTTP/1.1\r\n')],
  ['v1 misspelt', text('PROXX TCP4')],
  ['v1 without the space', text('PROXYTCP4 ')],
  ['v1 unknown protocol', text('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n')],
  ['v1 missing a field', text('PROXY TCP4 192.0.2.1 198.51.100.7 54321\r\n')],
  ['v1 an extra field', text('PROXY TCP4 192.0.2.1 198.51.100.7 54321 443 9\r\n')],
  ['v1 double space', text('PROXY TCP4  192.0.2.1 198.51.100.7 54321 443\r\n')],
  ['v1 IPv6 under TCP4', text('PROXY TCP4 2001:db8::1 198.51.100.7 54321 443\r\n')],
  ['v1 IPv4 under TCP6', text('PROXY TCP6 192.0.2.1 2001:db8::2 54321 443\r\n')],
  ['v1 IPv6 with a zone', text('PROXY TCP6 fe80::1%eth0 2001:db8::2 54321 443\r\n')],
  ['v1 a name for an address', text('PROXY TCP4 example.com 198.51.100.7 54321 443\r\n')],
  ['v1 port over 65535', text('PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n')],
  ['v1 port with a leading zero', text('PROXY TCP4 192.0.2.1 198.51.100.7 054321 443\r\n')],
  ['v1 negative port', text('PROXY TCP4 192.0.2.1 198.51.100.7 -1 443\r\n')],
  ['v1 LF only, then 107 bytes', text(`PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n${'x'.repeat(80)}`)],
  ['v1 over 107 bytes', text(`PROXY UNKNOWN ${'x'.repeat(V1_MAX_LENGTH)}\r\n`)],
  ['v2 signature broken', hex(`${SIG.slice(0, -2)}0b 21 11 000c`)],
  ['v2 version 1', hex(`${SIG} 11 11 000c c0000201 c6336407 d431 01bb`)],
  ['v2 version 3', hex(`${SIG} 31 11 000c c0000201 c6336407 d431 01bb`)],
  ['v2 command 2', hex(`${SIG} 22 11 000c c0000201 c6336407 d431 01bb`)],
  ['v2 family 4', hex(`${SIG} 21 41 000c c0000201 c6336407 d431 01bb`)],
  ['v2 transport 3', hex(`${SIG} 21 13 000c c0000201 c6336407 d431 01bb`)],
  ['v2 AF_INET block too short', hex(`${SIG} 21 11 0008 c0000201 c6336407`)],
  ['v2 AF_INET6 block too short', hex(`${SIG} 21 21 000c c0000201 c6336407 d431 01bb`)],
  // §2.2: AF_UNIX addresses "are exactly 108 bytes each".
  ['v2 AF_UNIX block too short', hex(`${SIG} 21 31 000c c0000201 c6336407 d431 01bb`)],
  ['v2 AF_UNIX block empty', hex(`${SIG} 21 31 0000`)],
  ['v2 oversize', hex(`${SIG} 21 11 ${(V2_MAX_LENGTH - 15).toString(16).padStart(4, '0')}`)],
  ['v2 largest length field', hex(`${SIG} 21 11 ffff`)],
];

test('malformed and oversize headers are a ProtocolError as soon as the bytes show it', () => {
  for (const [name, wire] of MALFORMED) {
    assert.throws(() => decodeProxyHeader(wire), (err: unknown) => err instanceof ProtocolError && /^PROXY header: /.test(err.message), name);
  }
});

test('the v2 length limit is inclusive', () => {
  const block = V2_MAX_LENGTH - 16;
  const wire = Buffer.concat([hex(`${SIG} 21 11 ${block.toString(16).padStart(4, '0')} c0000201 c6336407 d431 01bb`), Buffer.alloc(block - 12)]);
  assert.equal(wire.length, V2_MAX_LENGTH);
  const d = decodeProxyHeader(wire);
  assert.ok(d !== NEED_DATA && d.size === V2_MAX_LENGTH && 'source' in d.value && d.value.source.host === '192.0.2.1');
});

// ---- properties --------------------------------------------------------------------------------

const RUNS = { numRuns: 500 };
const port = fc.integer({ min: 0, max: 0xffff });
const inet = fc.record({ family: fc.constant('inet' as const), source: fc.record({ host: fc.ipV4(), port }), dest: fc.record({ host: fc.ipV4(), port }) });
// Hex words without '::' so that the text decoded back is compared through its bytes.
const v6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((w) => w.map((x) => x.toString(16)).join(':'));
const inet6 = fc.record({ family: fc.constant('inet6' as const), source: fc.record({ host: v6, port }), dest: fc.record({ host: v6, port }) });
const tlvs = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));
const v6Bytes = (h: string): string =>
  h.includes(':') ? new URL(`http://[${h}]/`).hostname : h; // the WHATWG parser normalizes, as a second opinion

test('property: v1 and v2 headers round-trip, and every proper prefix needs data', () => {
  fc.assert(
    fc.property(fc.oneof(inet, inet6), tlvs, fc.boolean(), (h, extra, v2) => {
      const wire = v2 ? encodeProxyV2({ command: 'proxy', ...h }, extra) : encodeProxyV1(h);
      const d = decodeProxyHeader(wire);
      assert.ok(d !== NEED_DATA && d.size === wire.length && 'source' in d.value);
      assert.equal(d.value.family, h.family);
      assert.equal(v6Bytes(d.value.source.host), v6Bytes(h.source.host));
      assert.equal(v6Bytes(d.value.dest.host), v6Bytes(h.dest.host));
      assert.deepEqual([d.value.source.port, d.value.dest.port], [h.source.port, h.dest.port]);
      for (let cut = 0; cut < wire.length; cut++) assert.equal(decodeProxyHeader(wire.subarray(0, cut)), NEED_DATA);
    }),
    RUNS,
  );
});

const prefixed = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([text('PROXY '), Buffer.from(b)])),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([hex(SIG), Buffer.from(b)])),
  fc.tuple(fc.constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN'), fc.string({ maxLength: 110 })).map(([p, s]) => text(`PROXY ${p}${s}\r\n`)),
);

test('property: any bytes decode to a header or NEED_DATA, or throw ProtocolError, and nothing else', () => {
  fc.assert(
    fc.property(prefixed, (wire) => {
      try {
        const d = decodeProxyHeader(wire);
        if (d !== NEED_DATA) assert.ok(d.size <= wire.length && d.size <= V2_MAX_LENGTH);
        else assert.ok(wire.length < V2_MAX_LENGTH);
      } catch (err) {
        assert.ok(err instanceof ProtocolError, String(err));
      }
    }),
    { numRuns: 2000 },
  );
});
