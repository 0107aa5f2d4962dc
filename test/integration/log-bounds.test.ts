// What a client writes reaches the access log bounded: a refused HTTP login's name, a session, a CONNECT
// or absolute-form host, a scheme, each cut to 255 bytes and "…" (RFC 1929's bound on a SOCKS5
// name, and SOCKS4's on its USERID and HOSTNAME), so a 12 KB header is not a 12 KB log line.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { readBytes, startGateway } from '../helpers/index.js';

/** Writes one raw request and reads the status line's start; the connection closes after. */
async function status(port: number, request: string): Promise<string> {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(request);
  const reply = await readBytes(s, 12, 5_000);
  s.destroy();
  return reply.toString();
}

const LONG = 'a'.repeat(12_000);
const basic = (user: string, password: string): string => Buffer.from(`${user}:${password}`).toString('base64');

test('a refused HTTP login with a 12 KB name is logged with its first 255 bytes and a mark', async (t) => {
  const gw = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  t.after(() => gw.close());
  const auth = `Proxy-Authorization: Basic ${basic(LONG, 'x')}\r\n`;
  assert.equal(await status(gw.port, `CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n${auth}\r\n`), 'HTTP/1.1 407');
  assert.equal(await status(gw.port, `GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n${auth}\r\n`), 'HTTP/1.1 407');
  for (const sid of [1, 2]) {
    const line = await gw.accessLog((l) => l.sid === sid && l.msg === 'session end');
    assert.equal(line?.user, `${'a'.repeat(255)}…`);
    assert.ok(JSON.stringify(line).length < 1_000, 'the line stays short');
  }
  // A name within the bound is logged whole, as before.
  assert.equal(await status(gw.port, `GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\nProxy-Authorization: Basic ${basic('mallory', 'x')}\r\n\r\n`), 'HTTP/1.1 407');
  assert.ok(await gw.accessLog((l) => l.user === 'mallory'));
});

test('a 12 KB CONNECT host, absolute-form host or scheme is logged cut to 255 bytes', async (t) => {
  const gw = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  t.after(() => gw.close());
  const auth = `Proxy-Authorization: Basic ${basic('bob', 'pw')}\r\n`;
  assert.equal(await status(gw.port, `CONNECT ${LONG}.test:443 HTTP/1.1\r\nHost: x\r\n${auth}\r\n`), 'HTTP/1.1 400');
  assert.equal(await status(gw.port, `GET http://${LONG}.test/ HTTP/1.1\r\nHost: x\r\n${auth}\r\n`), 'HTTP/1.1 400');
  assert.equal(await status(gw.port, `GET ${LONG}://x/ HTTP/1.1\r\nHost: x\r\n${auth}\r\n`), 'HTTP/1.1 400');
  for (const sid of [1, 2, 3]) {
    const line = await gw.accessLog((l) => l.sid === sid && l.msg === 'session end');
    assert.ok(line, `session ${sid} is logged`);
    assert.ok(JSON.stringify(line).length < 1_000, `session ${sid}: ${JSON.stringify(line).slice(0, 300)}`);
  }
  assert.equal((await gw.accessLog((l) => l.sid === 1))?.dest, `${'a'.repeat(255)}…`);
  assert.match(String((await gw.accessLog((l) => l.sid === 3))?.error), /^a{255}…:\/\/ is not forwarded/);
});

test('a logged-in HTTP client naming a 12 KB session has it logged cut to 255 bytes', async (t) => {
  const gw = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  t.after(() => gw.close());
  const auth = `Proxy-Authorization: Basic ${basic(`bob-session-${LONG}`, 'pw')}\r\n`;
  assert.match(await status(gw.port, `CONNECT 127.0.0.1:9 HTTP/1.1\r\nHost: 127.0.0.1:9\r\n${auth}\r\n`), /^HTTP\/1\.1 5\d\d/);
  const line = await gw.accessLog((l) => l.msg === 'session end');
  assert.equal(line?.user, 'bob');
  assert.equal(line?.session, `${'a'.repeat(255)}…`);
});
