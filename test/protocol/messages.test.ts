import { test } from '../helpers/test.js';
import { strict as assert } from 'node:assert';
import { ProtocolError, Rep } from '../../src/errors.js';
import { Cmd } from '../../src/protocol/constants.js';
import {
  decodeAuthRequest,
  decodeGreeting,
  decodeReply,
  decodeRequest,
  decodeUdpDatagram,
  encodeAddress,
  encodeAuthRequest,
  encodeAuthStatus,
  encodeGreeting,
  encodeMethod,
  encodeReply,
  encodeRequest,
  encodeUdpDatagram,
  encodeUdpHeader,
  hasUdpHeader,
  NEED_DATA,
} from '../../src/protocol/messages.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const isProtocol = (rep: Rep) => (err: unknown) => err instanceof ProtocolError && err.rep === rep;

test('encodeAddress picks the address type from the text', () => {
  assert.deepEqual(encodeAddress({ host: '127.0.0.1', port: 80 }), hex('01 7f000001 0050'));
  assert.deepEqual(encodeAddress({ host: '::1', port: 80 }), hex('04 00000000000000000000000000000001 0050'));
  assert.deepEqual(encodeAddress({ host: '2001:DB8::1', port: 1 }), hex('04 20010db8000000000000000000000001 0001'));
  assert.deepEqual(encodeAddress({ host: '::ffff:10.1.2.3', port: 443 }), hex('01 0a010203 01bb'));
  assert.deepEqual(encodeAddress({ host: '::1.2.3.4', port: 0 }), hex('04 00000000000000000000000001020304 0000'));
  assert.deepEqual(encodeAddress({ host: 'fe80::1%eth0', port: 0 }), hex('04 fe800000000000000000000000000001 0000'));
  assert.deepEqual(encodeAddress({ host: 'a.b', port: 65535 }), hex('03 03 612e62 ffff'));
  assert.deepEqual(encodeAddress({ host: '1.2.3', port: 1 }), hex('03 05 312e322e33 0001'), 'not IPv4: a domain');
  assert.throws(() => encodeAddress({ host: 'x'.repeat(256), port: 1 }), isProtocol(Rep.GENERAL_FAILURE));
  assert.throws(() => encodeAddress({ host: '', port: 1 }), ProtocolError);
  assert.equal(encodeAddress({ host: 'x'.repeat(255), port: 1 }).length, 259);
});

test('IPv6 decodes to the compressed text Node prints', () => {
  const cases: [string, string][] = [
    ['00000000000000000000000000000001', '::1'],
    ['00000000000000000000000000000000', '::'],
    ['20010db8000000000000000000000001', '2001:db8::1'],
    ['20010db8000000010000000000000001', '2001:db8:0:1::1'],
    ['20010db8000000000001000000000001', '2001:db8::1:0:0:1'],
    ['00000000000000000000ffff01020304', '::ffff:1.2.3.4'],
    ['00010000000000000000000000000000', '1::'],
    ['00010002000300040005000600070008', '1:2:3:4:5:6:7:8'],
    ['00010000000200000003000000040000', '1:0:2:0:3:0:4:0'],
  ];
  for (const [bytes, text] of cases) {
    const d = decodeReply(hex(`05 00 00 04 ${bytes} 0016`));
    assert.notEqual(d, NEED_DATA);
    if (d !== NEED_DATA) assert.deepEqual(d.value.bound, { host: text, port: 22 });
  }
});

test('greeting', () => {
  assert.equal(decodeGreeting(hex('')), NEED_DATA);
  assert.equal(decodeGreeting(hex('05')), NEED_DATA);
  assert.equal(decodeGreeting(hex('0502 00')), NEED_DATA);
  assert.deepEqual(decodeGreeting(hex('0502 0002 ff')), { value: { methods: [0, 2] }, size: 4 });
  assert.deepEqual(decodeGreeting(hex('0500')), { value: { methods: [] }, size: 2 });
  assert.throws(() => decodeGreeting(hex('04')), ProtocolError);
  assert.deepEqual(encodeGreeting([0, 2]), hex('05020002'));
  assert.deepEqual(encodeMethod(0xff), hex('05ff'));
});

test('auth request and status', () => {
  const wire = encodeAuthRequest('alice', 'pässword');
  assert.deepEqual(decodeAuthRequest(wire), { value: { username: 'alice', password: 'pässword' }, size: wire.length });
  for (let cut = 0; cut < wire.length; cut++) assert.equal(decodeAuthRequest(wire.subarray(0, cut)), NEED_DATA);
  assert.deepEqual(decodeAuthRequest(hex('01 00 00')), { value: { username: '', password: '' }, size: 3 });
  assert.throws(() => decodeAuthRequest(hex('05')), isProtocol(Rep.GENERAL_FAILURE));
  // Java's SocksSocketImpl sends ISO-8859-1: bytes that are not UTF-8 are read one char a byte,
  // not as U+FFFD (which made every such password one string, and none of them the configured one).
  const latin1 = Buffer.concat([hex('01 06'), Buffer.from('jürgen', 'latin1'), hex('08'), Buffer.from('pässwort', 'latin1')]);
  assert.deepEqual(decodeAuthRequest(latin1), { value: { username: 'jürgen', password: 'pässwort' }, size: latin1.length });
  const mixed = Buffer.concat([hex('01 05'), Buffer.from('alice'), hex('02 ff fe')]);
  assert.deepEqual(decodeAuthRequest(mixed), { value: { username: 'alice', password: 'ÿþ' }, size: mixed.length });
  assert.deepEqual(encodeAuthStatus(true), hex('0100'));
  assert.deepEqual(encodeAuthStatus(false), hex('0101'));
});

test('request', () => {
  const wire = encodeRequest(Cmd.UDP_ASSOCIATE, { host: '0.0.0.0', port: 0 });
  assert.deepEqual(wire, hex('05 03 00 01 00000000 0000'));
  assert.deepEqual(decodeRequest(Buffer.concat([wire, hex('ff')])), {
    value: { cmd: Cmd.UDP_ASSOCIATE, dest: { host: '0.0.0.0', port: 0 } },
    size: wire.length,
  });
  assert.throws(() => decodeRequest(hex('06')), isProtocol(Rep.GENERAL_FAILURE));
  assert.throws(() => decodeRequest(hex('05 01 00 05')), isProtocol(Rep.ADDRESS_TYPE_NOT_SUPPORTED));
  assert.throws(() => decodeRequest(hex('05 01 00 03 00')), isProtocol(Rep.GENERAL_FAILURE));
  assert.equal(decodeRequest(hex('05 00 00 01 7f0000')), NEED_DATA, 'bad CMD waits for the whole request');
  assert.throws(() => decodeRequest(hex('05 00 00 01 7f000001 0050')), isProtocol(Rep.COMMAND_NOT_SUPPORTED));
});

test('a name in UTF-8 decodes to its A-label (IDNA); one IDNA refuses, or bytes that are not UTF-8, stay as sent', () => {
  const request = (name: Buffer): Buffer => Buffer.concat([hex('05 01 00 03'), Buffer.from([name.length]), name, hex('0050')]);
  const host = (name: Buffer): unknown => {
    const d = decodeRequest(request(name));
    return d === NEED_DATA ? d : d.value.dest.host;
  };
  assert.equal(host(Buffer.from('bücher.example', 'utf8')), 'xn--bcher-kva.example');
  assert.equal(host(Buffer.from('BÜCHER.Example.', 'utf8')), 'xn--bcher-kva.example.', 'lower-cased, as rules read names');
  assert.equal(host(Buffer.from('例え.テスト', 'utf8')), 'xn--r8jz45g.xn--zckzah');
  assert.equal(host(Buffer.from('bü cher.example', 'utf8')), 'bü cher.example');
  assert.equal(host(Buffer.from('62ff722e74657374', 'hex')), 'b\u00ffr.test');
  assert.equal(host(Buffer.from('127.1')), '127.1', 'ASCII stays as it came');
  const udp = decodeUdpDatagram(Buffer.concat([hex('0000 00 03'), Buffer.from([15]), Buffer.from('bücher.example'), hex('0035 ff')]));
  assert.deepEqual(udp.dest, { host: 'xn--bcher-kva.example', port: 53 }, 'UDP headers alike');
});

test('reply', () => {
  assert.deepEqual(encodeReply(Rep.CONNECTION_REFUSED), hex('05 05 00 01 00000000 0000'));
  assert.deepEqual(encodeReply(Rep.SUCCEEDED, { host: '::1', port: 8080 }), hex('05 00 00 04 00000000000000000000000000000001 1f90'));
  assert.deepEqual(decodeReply(hex('05 04 00 03 01 61 0001')), {
    value: { rep: 4, bound: { host: 'a', port: 1 } },
    size: 8,
  });
  assert.equal(decodeReply(hex('05 00 00 04 0000')), NEED_DATA);
});

test('UDP datagram', () => {
  const payload = Buffer.from('hello');
  const wire = encodeUdpDatagram({ host: 'example.com', port: 53 }, payload);
  assert.deepEqual(wire, Buffer.concat([hex('0000 00 03 0b 6578616d706c652e636f6d 0035'), payload]));
  assert.deepEqual(decodeUdpDatagram(wire), { frag: 0, dest: { host: 'example.com', port: 53 }, payload });
  assert.equal(decodeUdpDatagram(encodeUdpDatagram({ host: '1.2.3.4', port: 1 }, payload, 3)).frag, 3);
  assert.deepEqual(decodeUdpDatagram(hex('ffff 00 01 01020304 0001')).payload, hex(''), 'RSV ignored, empty payload');
  for (let cut = 0; cut < wire.length - payload.length; cut++) {
    assert.throws(() => decodeUdpDatagram(wire.subarray(0, cut)), isProtocol(Rep.GENERAL_FAILURE));
  }
  assert.throws(() => decodeUdpDatagram(hex('0000 00 07 01020304 0001')), isProtocol(Rep.ADDRESS_TYPE_NOT_SUPPORTED));
});

test('UDP header alone, and recognising it in front of a datagram', () => {
  const head = encodeUdpHeader({ host: '1.2.3.4', port: 53 });
  assert.deepEqual(head, hex('0000 00 01 01020304 0035'));
  assert.deepEqual(encodeUdpHeader({ host: '::1', port: 1 }, 2), hex('0000 02 04 00000000000000000000000000000001 0001'));
  assert.throws(() => encodeUdpHeader({ host: 'x'.repeat(256), port: 1 }), isProtocol(Rep.GENERAL_FAILURE));
  assert.equal(hasUdpHeader(hex('0000 00 01 01020304 0035 ff'), head), true);
  assert.equal(hasUdpHeader(hex('ffff 00 01 01020304 0035'), head), true, 'RSV ignored, empty payload');
  assert.equal(hasUdpHeader(hex('0000 01 01 01020304 0035 ff'), head), false, 'another FRAG');
  assert.equal(hasUdpHeader(hex('0000 00 01 01020304 0036 ff'), head), false, 'another port');
  assert.equal(hasUdpHeader(hex('0000 00 01 01020304 00'), head), false, 'shorter than the header');
  // A name that starts with the same bytes as an address is not that address.
  const name = encodeUdpHeader({ host: 'ab', port: 1 });
  assert.equal(hasUdpHeader(hex('0000 00 03 03 616263 0001'), name), false);
});
