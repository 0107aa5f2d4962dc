// The SOCKS4/4a codec: known wire bytes, any split of them, and random input.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ProtocolError, Rep } from '../../src/errors.js';
import { Socks4Cmd, Socks4Reply } from '../../src/protocol/constants.js';
import { NEED_DATA } from '../../src/protocol/messages.js';
import { decodeSocks4Reply, decodeSocks4Request, encodeSocks4Reply, encodeSocks4Request, Socks4RequestError } from '../../src/protocol/socks4.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

test('SOCKS4 CONNECT 127.0.0.1:80 with USERID "bob"', () => {
  const wire = hex('04 01 0050 7f000001 626f6200');
  assert.deepEqual(decodeSocks4Request(wire), {
    value: { cmd: Socks4Cmd.CONNECT, dest: { host: '127.0.0.1', port: 80 }, userId: 'bob' },
    size: wire.length,
  });
});

test('SOCKS4a BIND example.com:443 with an empty USERID', () => {
  const wire = Buffer.concat([hex('04 02 01bb 00000001 00'), Buffer.from('example.com\0')]);
  assert.deepEqual(decodeSocks4Request(wire), {
    value: { cmd: Socks4Cmd.BIND, dest: { host: 'example.com', port: 443 }, userId: '' },
    size: wire.length,
  });
});

test('a request decodes the same however the bytes are split, and bytes behind it are left', () => {
  const wires = [hex('04 01 1f90 0a000001 7500'), Buffer.concat([hex('04 01 0050 000000ff 757300'), Buffer.from('a.example\0')])];
  for (const wire of wires) {
    const whole = decodeSocks4Request(wire);
    assert.notEqual(whole, NEED_DATA);
    for (let cut = 0; cut < wire.length; cut++) assert.equal(decodeSocks4Request(wire.subarray(0, cut)), NEED_DATA, `cut ${cut}`);
    assert.deepEqual(decodeSocks4Request(Buffer.concat([wire, Buffer.from('GET /')])), whole);
  }
});

test('bad input: wrong version, unknown command, unterminated fields, empty 4a name', () => {
  const rejects = (wire: Buffer, rep: Rep): void =>
    assert.throws(() => decodeSocks4Request(wire), (e: unknown) => e instanceof ProtocolError && e.rep === rep);
  rejects(hex('05 01'), Rep.GENERAL_FAILURE);
  rejects(hex('04 03 0050 7f000001 00'), Rep.COMMAND_NOT_SUPPORTED);
  rejects(Buffer.concat([hex('04 03 0050 7f000001'), Buffer.alloc(300, 0x41)]), Rep.GENERAL_FAILURE);
  rejects(Buffer.concat([hex('04 01 0050 7f000001'), Buffer.alloc(300, 0x41)]), Rep.GENERAL_FAILURE);
  rejects(Buffer.concat([hex('04 01 0050 00000001 00'), Buffer.alloc(300, 0x41)]), Rep.GENERAL_FAILURE);
  rejects(hex('04 01 0050 00000001 00 00'), Rep.GENERAL_FAILURE);
});

test('an unknown CD is reported once the request is in, with the destination and USERID it named; a bad 4a name with the USERID', () => {
  assert.equal(decodeSocks4Request(hex('04 03 0050 7f000001')), NEED_DATA, 'the USERID is still to come');
  assert.equal(decodeSocks4Request(hex('04 03 0050 00000001 626f6200 6578')), NEED_DATA, 'so is the 4a name');
  const unknown = (wire: Buffer): Socks4RequestError => {
    try {
      decodeSocks4Request(wire);
    } catch (e) {
      if (e instanceof Socks4RequestError) return e;
      throw e;
    }
    assert.fail('decoded');
  };
  const v4 = unknown(hex('04 03 0050 7f000001 626f6200'));
  assert.equal(v4.rep, Rep.COMMAND_NOT_SUPPORTED);
  assert.equal(v4.message, 'socks4 command 3');
  assert.deepEqual(v4.dest, { host: '127.0.0.1', port: 80 });
  assert.equal(v4.userId, 'bob');
  const v4a = unknown(Buffer.concat([hex('04 ff 01bb 00000001 00'), Buffer.from('example.com\0', 'latin1')]));
  assert.deepEqual(v4a.dest, { host: 'example.com', port: 443 });
  assert.equal(v4a.userId, '');
  // A 4a name refused after the USERID was read: the error keeps the USERID, and no destination.
  const empty = unknown(hex('04 01 0050 00000001 626f6200 00'));
  assert.equal(empty.rep, Rep.GENERAL_FAILURE);
  assert.equal(empty.userId, 'bob');
  assert.equal(empty.dest, undefined);
  assert.equal(unknown(Buffer.concat([hex('04 02 0050 00000001 626f6200'), Buffer.alloc(300, 0x41)])).userId, 'bob');
});

test('encode → decode round-trips requests; replies carry code, port and IPv4', () => {
  const req = encodeSocks4Request(Socks4Cmd.CONNECT, { host: 'host.test', port: 8080 }, 'me');
  assert.deepEqual(decodeSocks4Request(req), { value: { cmd: 1, dest: { host: 'host.test', port: 8080 }, userId: 'me' }, size: req.length });
  assert.deepEqual(encodeSocks4Reply(Socks4Reply.GRANTED, { host: '10.1.2.3', port: 1080 }), hex('00 5a 0438 0a010203'));
  assert.deepEqual(encodeSocks4Reply(Socks4Reply.REJECTED), hex('00 5b 0000 00000000'));
  assert.deepEqual(encodeSocks4Reply(Socks4Reply.GRANTED, { host: '::1', port: 1 }), hex('00 5a 0001 00000000'));
  assert.deepEqual(decodeSocks4Reply(hex('00 5a 0438 0a010203')), { value: { code: 0x5a, bound: { host: '10.1.2.3', port: 1080 } }, size: 8 });
});

test('property: random bytes only ever give NEED_DATA, a request, or a ProtocolError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), fc.boolean(), (bytes, socks4) => {
      const buf = Buffer.from(bytes);
      if (socks4 && buf.length > 0) buf[0] = 4;
      try {
        const d = decodeSocks4Request(buf);
        if (d !== NEED_DATA) assert.ok(d.size <= buf.length);
      } catch (err) {
        if (!(err instanceof ProtocolError)) throw err;
      }
    }),
    { numRuns: 2_000 },
  );
});

test('property: any split of a valid request decodes to the same request', () => {
  // 0.0.0.x (x ≠ 0) is SOCKS4a's marker, never a destination.
  const host = fc.oneof(fc.ipV4().filter((ip) => !ip.startsWith('0.0.0.')), fc.domain());
  const userId = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\0') && Buffer.byteLength(s) <= 255);
  fc.assert(
    fc.property(host, fc.integer({ min: 0, max: 0xffff }), userId, fc.nat(), (h, port, user, cutSeed) => {
      const wire = encodeSocks4Request(Socks4Cmd.CONNECT, { host: h, port }, user);
      const cut = cutSeed % (wire.length + 1);
      const head = decodeSocks4Request(wire.subarray(0, cut));
      if (cut < wire.length) assert.equal(head, NEED_DATA);
      const d = decodeSocks4Request(wire);
      assert.notEqual(d, NEED_DATA);
      if (d !== NEED_DATA) {
        assert.equal(d.value.dest.port, port);
        assert.equal(d.value.userId, user);
      }
    }),
    { numRuns: 500 },
  );
});

test('names that only look like addresses go as SOCKS4a names, never as another address (fuzz findings)', () => {
  for (const host of ['300.1.1.1', '01.2.3.4', '0.0.0.5']) {
    const wire = encodeSocks4Request(Socks4Cmd.CONNECT, { host, port: 80 });
    assert.deepEqual([...wire.subarray(4, 8)], [0, 0, 0, 1], `${host}: the 4a marker`);
    const d = decodeSocks4Request(wire);
    assert.ok(d !== NEED_DATA);
    assert.equal(d.value.dest.host, host);
  }
  assert.deepEqual([...encodeSocks4Request(Socks4Cmd.CONNECT, { host: '10.0.0.255', port: 80 }).subarray(4, 8)], [10, 0, 0, 255]);
});

test('a SOCKS4a HOSTNAME in UTF-8 decodes to its A-label (IDNA)', () => {
  const wire = Buffer.concat([Buffer.from([4, 1, 0, 80, 0, 0, 0, 1, 0]), Buffer.from('bücher.example\0', 'utf8')]);
  const d = decodeSocks4Request(wire);
  assert.ok(d !== NEED_DATA);
  assert.deepEqual(d.value.dest, { host: 'xn--bcher-kva.example', port: 80 });
});

test('a USERID is read as UTF-8, as RFC 1929 usernames are', () => {
  const wire = Buffer.concat([Buffer.from([4, 1, 0, 80, 127, 0, 0, 1]), Buffer.from('jörg Ābel\0', 'utf8')]);
  const d = decodeSocks4Request(wire);
  assert.ok(d !== NEED_DATA);
  assert.equal(d.value.userId, 'jörg Ābel');
});
