// Logins end to end: hashed passwords and allow_anonymous, through the gateway with real
// clients (the `socks` package for RFC 1929, curl for HTTP Basic). SOCKS4 and allow_anonymous:
// socks4.test.ts.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { hashPassword } from '../../src/server/auth.js';
import { hashCount } from '../../src/server/login-throttle.js';
import { curl } from '../helpers/curl.js';
import { readBytes, socksConnect, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';

/** Writes `text` and reads as many bytes back (bounded by readBytes), then closes. */
async function echoes(socket: import('node:net').Socket, text: string): Promise<string> {
  socket.write(text);
  const back = await readBytes(socket, Buffer.byteLength(text));
  socket.destroy();
  return back.toString();
}

test('a password_hash user logs in with the password (SOCKS5 and HTTP Basic); a wrong one does not', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ auth: { users: [{ username: 'bob', password_hash: await hashPassword('bob-pw') }] } });
  t.after(() => gw.close());
  const dest = { host: echo.host, port: echo.port };

  const { socket } = await socksConnect(gw.port, dest, 5_000, { userId: 'bob', password: 'bob-pw' });
  assert.equal(await echoes(socket, 'hashed'), 'hashed');
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'bob', password: 'bob-pw2' }), /Authentication failed/);
  await assert.rejects(socksConnect(gw.port, dest, 5_000), /no accepted authentication type/, 'no credentials, no anonymous');

  const ok = await curl(['-x', `http://bob:bob-pw@127.0.0.1:${gw.port}`, `${http.url}/basic`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^hello \/basic/);
  const denied = await curl(['-o', '/dev/null', '-w', '%{http_code}', '-x', `http://bob:nope@127.0.0.1:${gw.port}`, `${http.url}/basic`]);
  assert.equal(denied.stdout, '407');

  assert.ok(await gw.accessLog((l) => l.user === 'bob' && l.rep === 0));
});

test('allow_anonymous: a client offering no auth gets in as nobody, credentials still count', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'alice-pw' }], allow_anonymous: true },
    rules: [{ name: 'alice-only', users: ['alice'], action: 'direct' }],
    default: 'direct',
  });
  t.after(() => gw.close());
  const dest = { host: echo.host, port: echo.port };

  const anon = await socksConnect(gw.port, dest, 5_000);
  assert.equal(await echoes(anon.socket, 'anon'), 'anon');
  const line = await gw.accessLog((l) => l.rule === 'default');
  assert.ok(line, 'the anonymous session has its access-log line');
  assert.equal(line.user, undefined, 'an anonymous session has no user');

  const alice = await socksConnect(gw.port, dest, 5_000, { userId: 'alice', password: 'alice-pw' });
  assert.equal(await echoes(alice.socket, 'alice'), 'alice');
  assert.equal((await gw.accessLog((l) => l.user === 'alice'))?.rule, 'alice-only');
  // Offering credentials picks method 0x02, so a wrong password is refused, not let in anonymously.
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'alice', password: 'wrong' }), /Authentication failed/);
});

/** A raw RFC 1929 login with the name and password as `bytes` give them; the status byte, or undefined on a close. */
async function rawLogin(port: number, user: Buffer, password: Buffer): Promise<number | undefined> {
  const s = connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([Buffer.from([5, 1, 2, 1, user.length]), user, Buffer.from([password.length]), password]));
  const reply = await readBytes(s, 4, 5_000);
  s.destroy();
  return reply.length === 4 ? reply[3] : undefined;
}

test('a non-ASCII name and password log in over SOCKS5 in ISO-8859-1 (Java) as in UTF-8, as over HTTP Basic', async (t) => {
  const gw = await startGateway({ auth: { users: [{ username: 'jürgen', password: 'pässwört' }] } });
  t.after(() => gw.close());
  assert.equal(await rawLogin(gw.port, Buffer.from('jürgen-session-K1', 'utf8'), Buffer.from('pässwört', 'utf8')), 0);
  assert.equal(await rawLogin(gw.port, Buffer.from('jürgen-session-K1', 'latin1'), Buffer.from('pässwört', 'latin1')), 0);
  assert.equal(await rawLogin(gw.port, Buffer.from('jürgen', 'latin1'), Buffer.from('passwort', 'latin1')), 1);
  const refused = await gw.accessLog((l) => l.error === 'authentication failed');
  assert.equal(refused?.user, 'jürgen', 'the refused login is logged with the name as the client meant it');
});

test('a login whose session parameters do not parse is logged as such, not as a wrong password (SOCKS5 and HTTP)', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] } });
  t.after(() => gw.close());
  // The right password: a session value with a "." (or an empty one) is what is wrong.
  assert.equal(await rawLogin(gw.port, Buffer.from('alice-session-a.b'), Buffer.from('alice-pw')), 1);
  const socks = await gw.accessLog((l) => l.protocol === 'socks5' && l.user === 'alice-session-a.b');
  assert.match(String(socks?.error), /^malformed session parameters in the username/);
  // Letters and digits, but no duration: the line names what a lifetime must be.
  assert.equal(await rawLogin(gw.port, Buffer.from('alice-session-K1-lifetime-1d'), Buffer.from('alice-pw')), 1);
  const day = await gw.accessLog((l) => l.protocol === 'socks5' && l.user === 'alice-session-K1-lifetime-1d');
  assert.match(String(day?.error), /lifetime a duration/);

  const res = await curl(['-w', '\n%{http_code}', '-x', `http://alice-session-:alice-pw@127.0.0.1:${gw.port}`, `${http.url}/`]);
  assert.match(res.stdout, /^malformed session parameters in the username.*\n\n407$/);
  assert.match(String((await gw.accessLog((l) => l.protocol === 'http'))?.error), /^malformed session parameters/);

  assert.equal(await rawLogin(gw.port, Buffer.from('alice'), Buffer.from('wrong')), 1);
  assert.ok(await gw.accessLog((l) => l.user === 'alice' && l.error === 'authentication failed'), 'a wrong password is still a failed login');
});

test('a client that leaves while its password is hashed is not dialed for (SOCKS5 and HTTP CONNECT)', async (t) => {
  const target = await startEchoServer();
  t.after(() => target.close());
  // One user per protocol: a password verified once is not hashed again.
  const users = ['bob', 'carol', 'dave'].map(async (username) => ({ username, password_hash: await hashPassword(`${username}-pw`) }));
  const gw = await startGateway({ auth: { users: await Promise.all(users) } });
  t.after(() => gw.close());
  const user = Buffer.from('carol');
  const pw = Buffer.from('carol-pw');
  const port = Buffer.from([target.port >> 8, target.port & 0xff]);
  const basic = Buffer.from('dave:dave-pw').toString('base64');
  const requests = {
    socks5: Buffer.concat([Buffer.from([5, 1, 2, 1, user.length]), user, Buffer.from([pw.length]), pw, Buffer.from([5, 1, 0, 1, 127, 0, 0, 1]), port]),
    http: Buffer.from(`CONNECT 127.0.0.1:${target.port} HTTP/1.1\r\nHost: 127.0.0.1:${target.port}\r\nProxy-Authorization: Basic ${basic}\r\n\r\n`),
  };
  for (const [protocol, request] of Object.entries(requests)) {
    // The whole request in one write; the client resets once its password is being hashed
    // (scrypt takes tens of ms). A FIN would not do: after a request it is a half-close.
    const s = connect({ host: '127.0.0.1', port: gw.port });
    s.on('error', () => {});
    await once(s, 'connect');
    const hashed = hashCount();
    s.write(request);
    for (let i = 0; hashCount() === hashed; i++) {
      assert.ok(i < 100_000, `${protocol}: the hash began`);
      await new Promise((r) => setImmediate(r));
    }
    s.resetAndDestroy();
    const line = await gw.accessLog((l) => l.protocol === protocol, 10_000);
    assert.ok(line, `${protocol}: the connection is logged`);
    assert.equal(line.rep, undefined, `${protocol}: no reply, nobody to read it`);
  }
  // One more, through to the target: had either been dialed, the target saw it first.
  const { socket } = await socksConnect(gw.port, { host: target.host, port: target.port }, 5_000, { userId: 'bob', password: 'bob-pw' });
  assert.equal(await echoes(socket, 'last'), 'last');
  assert.equal(target.peers.length, 1, `the target saw only the last client's connection: ${JSON.stringify(target.peers)}`);
});
