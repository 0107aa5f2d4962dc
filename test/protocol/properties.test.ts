// Property tests (fast-check): splitting never changes what is decoded, encode→decode round
// trips, and no input makes the codec throw anything but ProtocolError.
import { test } from '../helpers/test.js';
import { strict as assert } from 'node:assert';
import { isIP, SocketAddress } from 'node:net';
import { domainToASCII } from 'node:url';
import fc from 'fast-check';
import { ProtocolError, Rep } from '../../src/errors.js';
import { Cmd, Method } from '../../src/protocol/constants.js';
import { ServerHandshake } from '../../src/protocol/handshake.js';
import {
  decodeAuthRequest,
  decodeGreeting,
  decodeReply,
  decodeRequest,
  decodeUdpDatagram,
  encodeAddress,
  encodeAuthRequest,
  encodeGreeting,
  encodeReply,
  encodeRequest,
  encodeUdpDatagram,
  NEED_DATA,
} from '../../src/protocol/messages.js';
import type { Address, HandshakeEvent } from '../../src/protocol/types.js';

const RUNS = { numRuns: 300 };

// ---- arbitraries -----------------------------------------------------------------------------

const port = fc.integer({ min: 0, max: 0xffff });
const latin1Char = fc.integer({ min: 0, max: 0xff }).map((c) => String.fromCharCode(c));
const domain = fc.oneof(
  fc.domain(),
  fc.string({ unit: latin1Char, minLength: 1, maxLength: 255 }).filter((s) => isIP(s) === 0),
);
const ipv6Bytes = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => Buffer.from(b));
const fullHex = (b: Buffer): string => b.toString('hex').match(/.{4}/g)!.join(':');
/** How Node itself prints an IPv6 address (libuv inet_ntop): the oracle for decoding. */
const nodeText = (ipv6: string): string => new SocketAddress({ address: ipv6, family: 'ipv6' }).address;
const host = fc.oneof(fc.ipV4(), fc.ipV6(), ipv6Bytes.map(fullHex), domain);
const address: fc.Arbitrary<Address> = fc.record({ host, port }, { noNullPrototype: true });
const cmd = fc.constantFrom(Cmd.CONNECT, Cmd.BIND, Cmd.UDP_ASSOCIATE);
const credential = fc.string({ maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 255);

/**
 * What a name's wire bytes (latin1 for a string within it, else UTF-8) decode to: non-ASCII
 * bytes that are UTF-8 are read so, then as their A-label when IDNA (the URL standard) takes them.
 */
function decodedName(host: string): string {
  const bytes = /^[\x00-\xff]*$/.test(host) ? Buffer.from(host, 'latin1') : Buffer.from(host, 'utf8');
  if (/^[\x00-\x7f]*$/.test(host)) return host;
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return host;
  }
  return domainToASCII(text) || text;
}

/** What `host` decodes back to: IPv6 in Node's text, IPv4-mapped IPv6 as plain IPv4, a name as decodedName reads it. */
function canonical(a: Address): Address {
  if (isIP(a.host) === 0) return { host: decodedName(a.host), port: a.port };
  if (isIP(a.host) !== 6) return a;
  const text = nodeText(a.host);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  return { host: mapped ? mapped[1]! : text, port: a.port };
}

/** Cut points (sorted, within 0..len) turned into chunks. */
function chunksOf(wire: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(wire.subarray(from, p));
    from = p;
  }
  chunks.push(wire.subarray(from));
  return chunks;
}
const cuts = fc.array(fc.nat(), { maxLength: 12 });

/** Plays a session: answers each event as soon as it comes out, and drains after each answer. */
function drive(hs: ServerHandshake, chunks: Buffer[], method: number): { events: HandshakeEvent[]; rest: Buffer } {
  const events: HandshakeEvent[] = [];
  const rest: Buffer[] = [];
  const take = (batch: HandshakeEvent[]): void => {
    for (const e of batch) {
      events.push(e);
      if (e.type === 'greeting') take(hs.receive(nothing(hs.selectMethod(method))));
      else if (e.type === 'auth') take(hs.receive(nothing(hs.authResult(true))));
      else hs.reply(Rep.SUCCEEDED);
    }
  };
  for (const c of chunks) {
    take(hs.receive(c));
    if (hs.state === 'done') rest.push(hs.remainder());
  }
  return { events, rest: Buffer.concat(rest) };
}
const nothing = (_sent: Buffer): Buffer => Buffer.alloc(0);

/** Runs `fn`; anything thrown must be a ProtocolError carrying a SOCKS reply code. */
function onlyProtocolErrors(fn: () => unknown): ProtocolError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    assert.ok(Object.values(Rep).includes(err.rep));
    return err;
  }
}

// ---- splitting ------------------------------------------------------------------------------

test('a whole pipelined handshake split at any points yields the same events and payload', () => {
  fc.assert(
    fc.property(
      fc.boolean(),
      fc.uniqueArray(fc.integer({ min: 0, max: 0xfe }), { maxLength: 20 }),
      credential,
      credential,
      cmd,
      address,
      fc.uint8Array({ maxLength: 64 }),
      cuts,
      (withAuth, extra, username, password, c, dest, payload, at) => {
        const method = withAuth ? Method.USERPASS : Method.NO_AUTH;
        const methods = [...new Set([...extra, method])];
        const wire = Buffer.concat([
          encodeGreeting(methods),
          withAuth ? encodeAuthRequest(username, password) : Buffer.alloc(0),
          encodeRequest(c, dest),
          payload,
        ]);
        const expected: HandshakeEvent[] = [
          { type: 'greeting', methods },
          ...(withAuth ? [{ type: 'auth' as const, username, password }] : []),
          { type: 'request', cmd: c, dest: canonical(dest) },
        ];
        const whole = drive(new ServerHandshake(), [wire], method);
        const split = drive(new ServerHandshake(), chunksOf(wire, at), method);
        assert.deepEqual(whole.events, expected);
        assert.deepEqual(split.events, expected);
        assert.deepEqual(whole.rest, Buffer.from(payload));
        assert.deepEqual(split.rest, Buffer.from(payload));
      },
    ),
    RUNS,
  );
});

test('decoders answer NEED_DATA for every proper prefix and the message for the whole', () => {
  const cases = fc.oneof(
    fc.uniqueArray(fc.integer({ min: 0, max: 0xff }), { maxLength: 255 }).map((m) => ({
      wire: encodeGreeting(m),
      decode: decodeGreeting as (b: Buffer) => unknown,
      value: { methods: m } as unknown,
    })),
    fc.tuple(credential, credential).map(([u, p]) => ({
      wire: encodeAuthRequest(u, p),
      decode: decodeAuthRequest as (b: Buffer) => unknown,
      value: { username: u, password: p } as unknown,
    })),
    fc.tuple(cmd, address).map(([c, a]) => ({
      wire: encodeRequest(c, a),
      decode: decodeRequest as (b: Buffer) => unknown,
      value: { cmd: c, dest: canonical(a) } as unknown,
    })),
    fc.tuple(fc.constantFrom(...Object.values(Rep)), address).map(([r, a]) => ({
      wire: encodeReply(r, a),
      decode: decodeReply as (b: Buffer) => unknown,
      value: { rep: r, bound: canonical(a) } as unknown,
    })),
  );
  fc.assert(
    fc.property(cases, fc.uint8Array({ maxLength: 8 }), ({ wire, decode, value }, trailer) => {
      for (let n = 0; n < wire.length; n++) assert.equal(decode(wire.subarray(0, n)), NEED_DATA);
      const withTrailer = Buffer.concat([wire, trailer]);
      assert.deepEqual(decode(withTrailer), { value, size: wire.length });
    }),
    RUNS,
  );
});

test('a UDP datagram decodes whole; cut inside the header it is a ProtocolError', () => {
  fc.assert(
    fc.property(address, fc.uint8Array({ maxLength: 512 }), fc.integer({ min: 0, max: 255 }), (dest, bytes, frag) => {
      const payload = Buffer.from(bytes);
      const wire = encodeUdpDatagram(dest, payload, frag);
      assert.deepEqual(decodeUdpDatagram(wire), { frag, dest: canonical(dest), payload });
      const header = wire.length - payload.length;
      for (let n = 0; n < header; n++) {
        assert.ok(onlyProtocolErrors(() => decodeUdpDatagram(wire.subarray(0, n))) instanceof ProtocolError);
      }
      for (let n = header; n <= wire.length; n++) {
        assert.deepEqual(decodeUdpDatagram(wire.subarray(0, n)).payload, payload.subarray(0, n - header));
      }
    }),
    RUNS,
  );
});

// ---- round trips -----------------------------------------------------------------------------

test('IPv6 bytes decode to exactly the text Node prints, and encode back to the same bytes', () => {
  fc.assert(
    fc.property(ipv6Bytes, port, (bytes, p) => {
      const d = decodeReply(Buffer.concat([Buffer.from([5, 0, 0, 4]), bytes, Buffer.from([p >> 8, p & 0xff])]));
      assert.notEqual(d, NEED_DATA);
      if (d === NEED_DATA) return;
      assert.equal(d.value.bound.host, nodeText(fullHex(bytes)));
      const again = encodeAddress(d.value.bound);
      const mapped = bytes.subarray(0, 12).equals(Buffer.from('00000000000000000000ffff', 'hex'));
      assert.deepEqual(again.subarray(1, -2), mapped ? bytes.subarray(12) : bytes);
    }),
    { numRuns: 1000 },
  );
});

test('encodeAddress → decode round trips every address', () => {
  fc.assert(
    fc.property(address, (a) => {
      const wire = encodeAddress(a);
      const d = decodeReply(Buffer.concat([Buffer.from([5, 0, 0]), wire]));
      assert.deepEqual(d, { value: { rep: 0, bound: canonical(a) }, size: wire.length + 3 });
    }),
    { numRuns: 1000 },
  );
});

test('domains longer than 255 bytes are refused with a ProtocolError', () => {
  fc.assert(
    fc.property(fc.string({ unit: latin1Char, minLength: 256, maxLength: 400 }), port, (h, p) => {
      assert.ok(onlyProtocolErrors(() => encodeAddress({ host: h, port: p })) instanceof ProtocolError);
    }),
  );
});

// ---- random bytes ----------------------------------------------------------------------------

const junk = fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.from(b));
/** Random bytes biased towards the shapes the decoders branch on. */
const nearlySocks = fc
  .tuple(fc.constantFrom(0, 1, 5), fc.nat(3), fc.constantFrom(0, 1, 2, 3, 4, 5, 255), junk)
  .map(([v, b1, atyp, rest]) => Buffer.concat([Buffer.from([v, b1, 0, atyp]), rest]));
const anyBytes = fc.oneof(junk, nearlySocks);

test('random bytes: decoders return or throw ProtocolError, nothing else', () => {
  fc.assert(
    fc.property(anyBytes, (buf) => {
      for (const decode of [decodeGreeting, decodeAuthRequest, decodeRequest, decodeReply, decodeUdpDatagram]) {
        onlyProtocolErrors(() => decode(buf));
      }
    }),
    { numRuns: 2000 },
  );
});

test('random bytes after any valid prefix: the handshake only throws ProtocolError, and failure() fits the phase', () => {
  const prefix = fc.constantFrom(
    { wire: Buffer.alloc(0), method: Method.NO_AUTH },
    { wire: encodeGreeting([0]), method: Method.NO_AUTH },
    { wire: encodeGreeting([2]), method: Method.USERPASS },
    { wire: Buffer.concat([encodeGreeting([2]), encodeAuthRequest('u', 'p')]), method: Method.USERPASS },
  );
  fc.assert(
    fc.property(prefix, anyBytes, cuts, fc.boolean(), ({ wire, method }, tail, at, refuse) => {
      const hs = new ServerHandshake();
      const err = onlyProtocolErrors(() => {
        for (const chunk of chunksOf(Buffer.concat([wire, tail]), at)) {
          const events = [...hs.receive(chunk)];
          for (let e = events.shift(); e; e = events.shift()) {
            if (e.type === 'greeting') hs.selectMethod(refuse ? Method.NO_ACCEPTABLE : method);
            else if (e.type === 'auth') hs.authResult(!refuse);
            else hs.reply(Rep.SUCCEEDED);
            if (hs.state !== 'done') events.push(...hs.receive(Buffer.alloc(0)));
          }
        }
      });
      if (!err) return;
      const phase = hs.state; // left at the phase that failed
      const sent = hs.failure(err);
      assert.equal(hs.state, 'done');
      if (phase === 'request') assert.deepEqual(sent, encodeReply(err.rep));
      else if (phase === 'auth' || phase === 'authenticating') assert.deepEqual(sent, Buffer.from([1, 1]));
      else assert.equal(sent, undefined);
    }),
    { numRuns: 2000 },
  );
});
