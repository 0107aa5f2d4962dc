import { test } from '../helpers/test.js';
import { strict as assert } from 'node:assert';
import { ProtocolError, Rep } from '../../src/errors.js';
import { Cmd, MAX_HANDSHAKE_BYTES, Method } from '../../src/protocol/constants.js';
import { ServerHandshake } from '../../src/protocol/handshake.js';
import { encodeAuthRequest, encodeGreeting, encodeRequest, UnknownCommandError } from '../../src/protocol/messages.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const CONNECT_EXAMPLE = hex('05 01 00 03 0b 6578616d706c652e636f6d 0050'); // CONNECT example.com:80

function readyForRequest(): ServerHandshake {
  const hs = new ServerHandshake();
  assert.deepEqual(hs.receive(hex('050100')), [{ type: 'greeting', methods: [0] }]);
  assert.deepEqual(hs.selectMethod(Method.NO_AUTH), hex('0500'));
  return hs;
}

function readyForAuth(): ServerHandshake {
  const hs = new ServerHandshake();
  hs.receive(hex('050102'));
  hs.selectMethod(Method.USERPASS);
  return hs;
}

function throwsProtocol(fn: () => unknown, rep: Rep): ProtocolError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ProtocolError, `expected ProtocolError, got ${String(caught)}`);
  assert.equal(caught.rep, rep);
  return caught;
}

test('no-auth handshake: greeting, method, request, reply', () => {
  const hs = readyForRequest();
  assert.equal(hs.state, 'request');
  assert.deepEqual(hs.receive(CONNECT_EXAMPLE), [
    { type: 'request', cmd: Cmd.CONNECT, dest: { host: 'example.com', port: 80 } },
  ]);
  assert.equal(hs.state, 'requested');
  assert.deepEqual(hs.reply(Rep.SUCCEEDED, { host: '127.0.0.1', port: 1234 }), hex('05 00 00 01 7f000001 04d2'));
  assert.equal(hs.state, 'done');
  assert.equal(hs.remainder().length, 0);
});

test('user/pass handshake with auth success and failure', () => {
  const hs = readyForAuth();
  assert.equal(hs.state, 'auth');
  assert.deepEqual(hs.receive(encodeAuthRequest('alice', 's3cret')), [
    { type: 'auth', username: 'alice', password: 's3cret' },
  ]);
  assert.equal(hs.state, 'authenticating');
  assert.deepEqual(hs.authResult(true), hex('0100'));
  assert.equal(hs.state, 'request');

  const bad = readyForAuth();
  bad.receive(encodeAuthRequest('alice', 'wrong'));
  assert.deepEqual(bad.authResult(false), hex('0101'));
  assert.equal(bad.state, 'done');
});

test('a request decodes the same however the bytes are split', () => {
  for (let cut = 0; cut <= CONNECT_EXAMPLE.length; cut++) {
    const hs = readyForRequest();
    const events = [...hs.receive(CONNECT_EXAMPLE.subarray(0, cut)), ...hs.receive(CONNECT_EXAMPLE.subarray(cut))];
    assert.deepEqual(events, [{ type: 'request', cmd: Cmd.CONNECT, dest: { host: 'example.com', port: 80 } }]);
  }
});

test('pipelined greeting+auth+request+payload in one chunk waits for each answer', () => {
  const wire = Buffer.concat([
    encodeGreeting([Method.USERPASS]),
    encodeAuthRequest('u', 'p'),
    CONNECT_EXAMPLE,
    Buffer.from('GET / HTTP/1.1\r\n'),
  ]);
  const hs = new ServerHandshake();
  assert.deepEqual(hs.receive(wire), [{ type: 'greeting', methods: [Method.USERPASS] }]);
  assert.equal(hs.state, 'choosing');
  assert.deepEqual(hs.receive(Buffer.alloc(0)), [], 'paused until the method is chosen');
  hs.selectMethod(Method.USERPASS);
  assert.deepEqual(hs.receive(Buffer.alloc(0)), [{ type: 'auth', username: 'u', password: 'p' }]);
  assert.deepEqual(hs.receive(Buffer.alloc(0)), [], 'paused until auth is answered');
  hs.authResult(true);
  assert.deepEqual(hs.receive(Buffer.alloc(0)), [
    { type: 'request', cmd: Cmd.CONNECT, dest: { host: 'example.com', port: 80 } },
  ]);
  assert.deepEqual(hs.receive(Buffer.from('more')), [], 'requested: bytes are only buffered');
  hs.reply(Rep.SUCCEEDED);
  assert.deepEqual(hs.receive(Buffer.from('!')), []);
  assert.equal(hs.remainder().toString(), 'GET / HTTP/1.1\r\nmore!');
});

test('bytes one at a time', () => {
  const wire = Buffer.concat([encodeGreeting([0, 2]), encodeAuthRequest('user', 'pass'), CONNECT_EXAMPLE]);
  const hs = new ServerHandshake();
  const events = [];
  for (const byte of wire) {
    for (const e of hs.receive(Buffer.from([byte]))) {
      events.push(e);
      if (e.type === 'greeting') hs.selectMethod(Method.USERPASS);
      if (e.type === 'auth') hs.authResult(true);
    }
  }
  assert.deepEqual(events, [
    { type: 'greeting', methods: [0, 2] },
    { type: 'auth', username: 'user', password: 'pass' },
    { type: 'request', cmd: Cmd.CONNECT, dest: { host: 'example.com', port: 80 } },
  ]);
  assert.equal(hs.remainder().length, 0);
});

test('greeting with a bad version: ProtocolError, nothing to send', () => {
  const hs = new ServerHandshake();
  const err = throwsProtocol(() => hs.receive(hex('040100')), Rep.GENERAL_FAILURE);
  assert.equal(hs.state, 'greeting', 'state names the phase that failed');
  assert.throws(() => hs.receive(hex('00')), (e) => e === err, 'fed more, it throws the same error');
  assert.equal(hs.failure(err), undefined);
  assert.equal(hs.state, 'done');
  const http = new ServerHandshake();
  assert.equal(http.failure(throwsProtocol(() => http.receive(Buffer.from('GET / HTTP/1.1')), Rep.GENERAL_FAILURE)), undefined);
});

test('NMETHODS 0 is a valid greeting; the session answers 0xFF and the handshake ends', () => {
  const hs = new ServerHandshake();
  assert.deepEqual(hs.receive(hex('0500')), [{ type: 'greeting', methods: [] }]);
  assert.deepEqual(hs.selectMethod(Method.NO_ACCEPTABLE), hex('05ff'));
  assert.equal(hs.state, 'done');
});

test('RFC 1929 sub-version other than 1: failure gives 01 01', () => {
  const hs = readyForAuth();
  const err = throwsProtocol(() => hs.receive(hex('05 01 61 01 62')), Rep.GENERAL_FAILURE);
  assert.deepEqual(hs.failure(err), hex('0101'));
  assert.equal(hs.state, 'done');
});

test('request version other than 5: reply 0x01', () => {
  const hs = readyForRequest();
  const err = throwsProtocol(() => hs.receive(hex('04')), Rep.GENERAL_FAILURE);
  assert.equal(hs.state, 'request');
  assert.deepEqual(hs.failure(err), hex('05 01 00 01 00000000 0000'));
});

test('unknown command: the whole request is read, then 0x07', () => {
  const hs = readyForRequest();
  const wire = hex('05 09 00 01 7f000001 0050');
  assert.deepEqual(hs.receive(wire.subarray(0, wire.length - 1)), [], 'waits for the whole request');
  const err = throwsProtocol(() => hs.receive(wire.subarray(wire.length - 1)), Rep.COMMAND_NOT_SUPPORTED);
  assert.ok(err instanceof UnknownCommandError);
  assert.deepEqual(err.dest, { host: '127.0.0.1', port: 80 }, 'the destination, for the access log');
  assert.deepEqual(hs.failure(err), hex('05 07 00 01 00000000 0000'));
});

test('unknown ATYP: 0x08 as soon as the byte arrives', () => {
  const hs = readyForRequest();
  const err = throwsProtocol(() => hs.receive(hex('05 01 00 02')), Rep.ADDRESS_TYPE_NOT_SUPPORTED);
  assert.deepEqual(hs.failure(err), hex('05 08 00 01 00000000 0000'));
});

test('zero-length domain: 0x01', () => {
  const hs = readyForRequest();
  const err = throwsProtocol(() => hs.receive(hex('05 01 00 03 00')), Rep.GENERAL_FAILURE);
  assert.deepEqual(hs.failure(err), hex('05 01 00 01 00000000 0000'));
});

test('RSV is ignored', () => {
  const hs = readyForRequest();
  assert.deepEqual(hs.receive(hex('05 01 ff 01 0a000001 1f90')), [
    { type: 'request', cmd: Cmd.CONNECT, dest: { host: '10.0.0.1', port: 8080 } },
  ]);
});

test('every command and address type', () => {
  for (const cmd of [Cmd.CONNECT, Cmd.BIND, Cmd.UDP_ASSOCIATE]) {
    for (const host of ['192.0.2.1', '2001:db8::1', '::1', 'example.org']) {
      const hs = readyForRequest();
      assert.deepEqual(hs.receive(encodeRequest(cmd, { host, port: 443 })), [
        { type: 'request', cmd, dest: { host, port: 443 } },
      ]);
    }
  }
});

test('the longest valid handshake, byte by byte, stays within MAX_HANDSHAKE_BYTES', () => {
  const wire = Buffer.concat([
    encodeGreeting(Array.from({ length: 255 }, (_, i) => i)),
    encodeAuthRequest('u'.repeat(255), 'p'.repeat(255)),
    encodeRequest(Cmd.CONNECT, { host: 'd'.repeat(255), port: 1 }),
  ]);
  assert.ok(wire.length <= MAX_HANDSHAKE_BYTES);
  const hs = new ServerHandshake();
  const types: string[] = [];
  for (const byte of wire) {
    for (const e of hs.receive(Buffer.from([byte]))) {
      types.push(e.type);
      if (e.type === 'greeting') hs.selectMethod(Method.USERPASS);
      if (e.type === 'auth') hs.authResult(true);
    }
  }
  assert.deepEqual(types, ['greeting', 'auth', 'request']);
});

test('a paused handshake buffering far beyond any handshake fails', () => {
  const choosing = new ServerHandshake();
  choosing.receive(hex('050100'));
  const flood = Buffer.alloc(MAX_HANDSHAKE_BYTES + 64 * 1024 + 1);
  const e1 = throwsProtocol(() => choosing.receive(flood), Rep.GENERAL_FAILURE);
  assert.equal(choosing.failure(e1), undefined);

  const authenticating = readyForAuth();
  authenticating.receive(encodeAuthRequest('u', 'p'));
  const e2 = throwsProtocol(() => authenticating.receive(flood), Rep.GENERAL_FAILURE);
  assert.deepEqual(authenticating.failure(e2), hex('0101'));
});

test('a paused handshake does not count pipelined payload against the limit', () => {
  const hs = readyForRequest();
  const big = Buffer.concat([CONNECT_EXAMPLE, Buffer.alloc(4 * MAX_HANDSHAKE_BYTES, 0x61)]);
  assert.equal(hs.receive(big).length, 1);
  assert.equal(hs.remainder().length, 4 * MAX_HANDSHAKE_BYTES);
});

test('a handshake used after done only buffers', () => {
  const hs = new ServerHandshake();
  hs.receive(hex('0500'));
  hs.selectMethod(Method.NO_ACCEPTABLE);
  assert.deepEqual(hs.receive(hex('deadbeef')), []);
  assert.deepEqual(hs.remainder(), hex('deadbeef'));
});
