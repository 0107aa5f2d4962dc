// A CONNECT head whole in the first read is parsed without an http.Server (http-first-connect.ts).
// The oracle is node's http.Server itself, fed the same bytes in one read: the head is taken
// exactly when the server would emit 'connect', and then with the same target, version, fields
// and bytes after it; every other input is left to the server untouched.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { setImmediate as turn } from 'node:timers/promises';
import fc from 'fast-check';
import { connectInFirstRead } from '../../src/server/fronts/http-first-connect.js';

const LIMITS = { maxHeaderSize: 16 * 1024, maxHeadersCount: 101 };

interface ServerSaw {
  connect?: { req: IncomingMessage; head: Buffer };
  error?: string;
  request?: string;
}

/** What node's http.Server, set up as the HTTP front's, makes of `bytes` arriving in one read. */
async function serverReading(bytes: Buffer): Promise<ServerSaw> {
  const server = createServer({ maxHeaderSize: LIMITS.maxHeaderSize, requestTimeout: 0, requireHostHeader: false });
  server.maxHeadersCount = LIMITS.maxHeadersCount;
  const saw: ServerSaw = {};
  server.on('connect', (req: IncomingMessage, _s: Duplex, head: Buffer) => (saw.connect = { req, head }));
  server.on('request', (req: IncomingMessage) => (saw.request = req.method));
  server.on('clientError', (err: NodeJS.ErrnoException) => (saw.error = err.code ?? err.message));
  const wire = new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb();
    },
  });
  server.emit('connection', wire);
  wire.push(bytes);
  await turn();
  wire.destroy();
  server.close();
  return saw;
}

async function agree(bytes: Buffer): Promise<void> {
  const mine = connectInFirstRead(new Socket(), bytes, LIMITS);
  const server = await serverReading(bytes);
  const what = JSON.stringify(bytes.toString('latin1').slice(0, 300));
  assert.equal(mine !== undefined, server.connect !== undefined, `taken here: ${mine !== undefined}, server: ${JSON.stringify({ ...server, connect: !!server.connect })} for ${what}`);
  if (!mine || !server.connect) return;
  const { req, head } = server.connect;
  assert.equal(mine.req.method, 'CONNECT');
  assert.equal(mine.req.url, req.url, what);
  assert.equal(mine.req.httpVersion, req.httpVersion, what);
  assert.deepEqual(mine.req.rawHeaders, req.rawHeaders, what);
  assert.deepEqual(mine.req.headers, req.headers, what);
  assert.deepEqual(mine.rest, head, what);
}

const target = fc.oneof(
  fc.constantFrom('127.0.0.1:443', '[::1]:8443', 'example.com:443', 'example.com', ':443', 'a b:1', 'user:pw@h:1', '*'),
  fc.string({ unit: fc.constantFrom('a', '.', ':', '[', ']', '1', '%', '\t', 'é'), maxLength: 20 }),
);
const version = fc.constantFrom('HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.x', 'HTP/1.1', 'HTTP/1.1 ');
const name = fc.oneof(
  fc.constantFrom('Host', 'Proxy-Authorization', 'proxy-authorization', 'User-Agent', 'Content-Length', 'Transfer-Encoding', 'Set-Cookie', 'X-A', 'Bad Name', ''),
  fc.string({ unit: fc.constantFrom('x', '-', '_', ':', ' ', '\u0000'), minLength: 1, maxLength: 8 }),
);
const value = fc.oneof(
  fc.constantFrom('Basic YWxpY2U6c2VjcmV0', '5', 'chunked', ' padded ', '', 'a\rb', 'x'.repeat(17 * 1024)),
  fc.string({ unit: fc.constantFrom('a', ' ', '\t', ',', '"', '\u0000', 'é', '\n '), maxLength: 30 }),
);
const field = fc.tuple(name, value).map(([n, v]) => `${n}: ${v}`);
const fields: fc.Arbitrary<string[]> = fc.oneof(fc.array(field, { maxLength: 8 }), fc.array(fc.constant('X-Many: 1'), { minLength: 98, maxLength: 104 }));
const method = fc.constantFrom('CONNECT', 'CONNECT', 'CONNECT', 'GET', 'connect', 'CONNECTX', 'CONNEC');
const eol = fc.constantFrom('\r\n', '\r\n', '\n');

/** A request head (often a CONNECT, often a bad one), maybe cut short, maybe followed by tunnel bytes. */
const input = fc
  .record({ method, target, version, fields, eol, after: fc.string({ maxLength: 40 }), cut: fc.option(fc.nat(), { nil: undefined }) })
  .map(({ method, target, version, fields, eol, after, cut }) => {
    const whole = Buffer.from(`${method} ${target} ${version}${eol}${fields.map((f) => f + eol).join('')}${eol}${after}`, 'latin1');
    return cut === undefined ? whole : whole.subarray(0, cut % (whole.length + 1));
  });

test('a first read is taken as a CONNECT exactly when node’s http.Server would take it, and read as it reads it', async () => {
  await fc.assert(fc.asyncProperty(input, agree), { numRuns: 400 });
});

test('the usual openings: a whole CONNECT with bytes behind it is taken; a split one, another method or a bad head is left to the server', async () => {
  const taken = connectInFirstRead(new Socket(), Buffer.from('CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nProxy-Authorization: Basic YQ==\r\n\r\n\x16\x03\x01'), LIMITS);
  assert.equal(taken?.req.url, 'h:443');
  assert.equal(taken?.req.headers['proxy-authorization'], 'Basic YQ==');
  assert.deepEqual(taken?.rest, Buffer.from('\x16\x03\x01', 'latin1'));
  for (const left of ['CONNECT h:443 HTTP/1.1\r\nHost: h:4', 'GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n', 'CONNECT h:443 HTTP/1.1\r\nBad Name: x\r\n\r\n', `CONNECT h:443 HTTP/1.1\r\nX: ${'x'.repeat(17_000)}\r\n\r\n`]) {
    assert.equal(connectInFirstRead(new Socket(), Buffer.from(left, 'latin1'), LIMITS), undefined, left.slice(0, 40));
    await agree(Buffer.from(left, 'latin1'));
  }
});
