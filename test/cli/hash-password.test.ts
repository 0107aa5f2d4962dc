// `socksgate hash-password` reading a pipe (at a terminal: hash-password-terminal.test.ts).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createAuthenticator } from '../../src/server/auth.js';
import { spawnTied } from '../helpers/spawn.js';
import { CLI, runCli } from '../helpers/cli.js';
import { startEchoServer, startGateway, socksConnect } from '../helpers/index.js';

test('hash-password prints a value that logs the password in through the gateway, and no other', async (t) => {
  const r = await runCli(['hash-password'], { input: 'correct horse\n' });
  assert.equal(r.code, 0, r.stderr);
  const hash = r.stdout.trim();
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ auth: { users: [{ username: 'carol', password_hash: hash }] } });
  t.after(() => gw.close());
  const dest = { host: echo.host, port: echo.port };
  const { socket } = await socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: 'correct horse' });
  t.after(() => socket.destroy());
  socket.write('through');
  const [echoed] = (await once(socket, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'through');
  socket.destroy();
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: 'correct horsE' }), /Authentication failed/);
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: hash }), /Authentication failed/, 'the hash is not the password');
  assert.ok(await gw.accessLog((l) => l.user === 'carol' && l.rep === 0));
});

test('hash-password reads a piped password that is not UTF-8 as ISO-8859-1, as a login reads those bytes', async () => {
  // `päss` from a Latin-1 file or terminal: read as UTF-8 it became "p\uFFFDss", a hash no login matched.
  const r = await runCli(['hash-password'], { input: Buffer.from('p\xe4ss\n', 'latin1') });
  assert.equal(r.code, 0, r.stderr);
  const auth = createAuthenticator({ users: [{ username: 'carol', password_hash: r.stdout.trim() }], allow_anonymous: false });
  assert.equal((await auth.verify('carol', 'p\u00e4ss')).ok, true, 'the password a SOCKS5 or Basic login of those bytes (or of its UTF-8) gives');
  assert.equal((await auth.verify('carol', 'p\uFFFDss')).ok, false);
});

test('hash-password refuses a password no SOCKS5 login can carry (over 255 bytes), as check refuses it in plain text', async () => {
  const long = 'é'.repeat(128); // 128 characters, 256 bytes
  const r = await runCli(['hash-password'], { input: `${long}\n` });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /256 bytes in UTF-8: a SOCKS5 login \(RFC 1929\) carries at most 255/);
  assert.ok(!r.stderr.includes(long));
  const fits = await runCli(['hash-password'], { input: `${'é'.repeat(127)}a\n` });
  assert.equal(fits.code, 0, fits.stderr);
  assert.match(fits.stdout, /^scrypt\$/);
});

test('hash-password stops reading a pipe that goes on past what a password can be (yes | socksgate hash-password)', async (t) => {
  const child = spawnTied(process.execPath, ['--import', 'tsx', CLI, 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.on('error', () => {}); // it stops reading: EPIPE here is the point
  // An input that never ends: before, the whole of it was buffered, gigabytes a minute.
  const line = Buffer.from('y\n'.repeat(8_192));
  const feed = setInterval(() => child.stdin!.writable && child.stdin!.write(line), 5);
  t.after(() => clearInterval(feed));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 1, `exit ${code}; stderr: ${stderr}`);
  assert.equal(stdout, '');
  assert.match(stderr, /hash-password: the password is over 255 bytes/);
});
