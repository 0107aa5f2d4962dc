// SOCKS5 logins end to end (RFC 1929): hashed passwords and allow_anonymous, through the
// gateway with the `socks` client.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { hashPassword } from '../../src/server/auth.js';
import { socksConnect, startEchoServer, startGateway } from '../helpers/index.js';

async function echoes(socket: import('node:net').Socket, text: string): Promise<string> {
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  socket.destroy();
  return chunk.toString();
}

test('a password_hash user logs in with the password; a wrong one does not', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ auth: { users: [{ username: 'bob', password_hash: await hashPassword('bob-pw') }] } });
  t.after(() => gw.close());
  const dest = { host: echo.host, port: echo.port };

  const { socket } = await socksConnect(gw.port, dest, 5_000, { userId: 'bob', password: 'bob-pw' });
  assert.equal(await echoes(socket, 'hashed'), 'hashed');
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'bob', password: 'bob-pw2' }), /Authentication failed/);
  await assert.rejects(socksConnect(gw.port, dest, 5_000), /no accepted authentication type/, 'no credentials, no anonymous');

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
  assert.equal(line?.user, undefined, 'an anonymous session has no user');

  const alice = await socksConnect(gw.port, dest, 5_000, { userId: 'alice', password: 'alice-pw' });
  assert.equal(await echoes(alice.socket, 'alice'), 'alice');
  assert.equal((await gw.accessLog((l) => l.user === 'alice'))?.rule, 'alice-only');
  // Offering credentials picks method 0x02, so a wrong password is refused, not let in anonymously.
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'alice', password: 'wrong' }), /Authentication failed/);
});
