import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { parsePasswordHash } from '../../src/config/password-hash.js';
import type { AuthConfig } from '../../src/config/types.js';
import { Method } from '../../src/protocol/constants.js';
import { splitSessionUser } from '../../src/protocol/username.js';
import { createAuthenticator, hashPassword } from '../../src/server/auth.js';

const BOB_HASH = await hashPassword('bob-pw');
const users = (allow_anonymous = false): AuthConfig => ({
  users: [
    { username: 'alice', password: 'alice-pw' },
    { username: 'bob', password_hash: BOB_HASH },
  ],
  allow_anonymous,
});

test('hashPassword writes scrypt$N$r$p$salt$hash that the config accepts, salted each time', async () => {
  assert.match(BOB_HASH, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/]+={0,2}\$[A-Za-z0-9+/]+={0,2}$/);
  const parsed = parsePasswordHash(BOB_HASH);
  assert.ok(typeof parsed !== 'string', String(parsed));
  assert.equal(parsed.salt.length, 16);
  assert.equal(parsed.hash.length, 32);
  assert.notEqual(await hashPassword('bob-pw'), BOB_HASH);
});

test('plain and hashed passwords verify; wrong ones and unknown users do not', async () => {
  const auth = createAuthenticator(users());
  assert.deepEqual(await auth.verify('alice', 'alice-pw'), { ok: true, user: 'alice', params: {} });
  assert.deepEqual(await auth.verify('bob', 'bob-pw'), { ok: true, user: 'bob', params: {} });
  assert.deepEqual(await auth.verify('alice', 'alice-pw '), { ok: false });
  assert.deepEqual(await auth.verify('alice', ''), { ok: false });
  assert.deepEqual(await auth.verify('alice', 'bob-pw'), { ok: false });
  assert.deepEqual(await auth.verify('bob', 'alice-pw'), { ok: false });
  assert.deepEqual(await auth.verify('bob', BOB_HASH), { ok: false }); // the hash is not the password
  assert.deepEqual(await auth.verify('carol', 'alice-pw'), { ok: false });
  assert.deepEqual(await auth.verify('', ''), { ok: false });
  assert.deepEqual(await auth.verify('Alice', 'alice-pw'), { ok: false });
});

test('non-ASCII passwords compare as UTF-8', async () => {
  const auth = createAuthenticator({ users: [{ username: 'zoë', password: 'pässwörd-✓' }], allow_anonymous: false });
  assert.deepEqual(await auth.verify('zoë', 'pässwörd-✓'), { ok: true, user: 'zoë', params: {} });
  assert.deepEqual(await auth.verify('zoë', 'passwort-✓'), { ok: false });
});

test('alice-session-XYZ authenticates as alice with session key XYZ and every parameter', async () => {
  const auth = createAuthenticator(users());
  assert.deepEqual(await auth.verify('alice-session-XYZ', 'alice-pw'), { ok: true, user: 'alice', sessionKey: 'XYZ', params: { session: 'XYZ' } });
  assert.deepEqual(await auth.verify('bob-country-de-session-s_1-lifetime-5m', 'bob-pw'), {
    ok: true,
    user: 'bob',
    sessionKey: 's_1',
    params: { country: 'de', session: 's_1', lifetime: '5m' },
  });
  assert.deepEqual(await auth.verify('alice-country-us', 'alice-pw'), { ok: true, user: 'alice', params: { country: 'us' } });
  assert.deepEqual(await auth.verify('alice-session-XYZ', 'wrong'), { ok: false });
  assert.deepEqual(await auth.verify('carol-session-1', 'alice-pw'), { ok: false });
  // Malformed parameter strings fail, whatever the password, and say so.
  for (const bad of ['alice-session-', 'alice-session', 'bob-session-a-session-b', 'alice-session-x.y', 'alice-lifetime-5', 'alice-lifetime-0s', 'alice--x-y', '-session-x']) {
    assert.deepEqual(await auth.verify(bad, bad.startsWith('bob') ? 'bob-pw' : 'alice-pw'), { ok: false, malformed: true }, bad);
  }
  assert.deepEqual(await auth.verify('', 'alice-pw'), { ok: false }, 'an empty name is no malformed session');
  assert.deepEqual(splitSessionUser('alice'), { user: 'alice', sessionKey: undefined, params: {} });
  assert.equal(splitSessionUser('-session-x'), undefined);
});

test('method choice: no auth, auth, and allow_anonymous', () => {
  const none = createAuthenticator(undefined);
  assert.equal(none.chooseMethod([Method.NO_AUTH]), Method.NO_AUTH);
  assert.equal(none.chooseMethod([Method.USERPASS, Method.NO_AUTH]), Method.NO_AUTH);
  assert.equal(none.chooseMethod([Method.USERPASS]), Method.NO_ACCEPTABLE);
  assert.equal(none.chooseMethod([]), Method.NO_ACCEPTABLE);

  const strict = createAuthenticator(users(false));
  assert.equal(strict.chooseMethod([Method.NO_AUTH, Method.USERPASS]), Method.USERPASS);
  assert.equal(strict.chooseMethod([Method.NO_AUTH]), Method.NO_ACCEPTABLE);
  assert.equal(strict.chooseMethod([0x01, 0x80]), Method.NO_ACCEPTABLE);

  const anonymous = createAuthenticator(users(true));
  assert.equal(anonymous.chooseMethod([Method.NO_AUTH, Method.USERPASS]), Method.USERPASS); // credentials win
  assert.equal(anonymous.chooseMethod([Method.NO_AUTH]), Method.NO_AUTH);
  assert.equal(anonymous.chooseMethod([0x01]), Method.NO_ACCEPTABLE);
});


test('a remembered credential still checks the password, and a changed config forgets it', async () => {
  const auth = createAuthenticator(users());
  assert.equal((await auth.verify('bob', 'bob-pw')).ok, true);
  assert.equal((await auth.verify('bob', 'bob-pw')).ok, true, 'second time from memory');
  assert.equal((await auth.verify('bob', 'bob-pwx')).ok, false);
  assert.equal((await auth.verify('bob-session-7', 'bob-pw')).sessionKey, '7');
  const changed = createAuthenticator({ users: [{ username: 'bob', password: 'new-pw' }], allow_anonymous: false });
  assert.equal((await changed.verify('bob', 'bob-pw')).ok, false);
});

/** A scrypt hash with these costs that matches no password. */
function costlyHash(N: number, p: number): string {
  return `scrypt$${N}$8$${p}$${randomBytes(16).toString('base64')}$${randomBytes(32).toString('base64')}`;
}

/** The median time of three wrong logins as `user`, in ms. */
async function wrongLoginMs(auth: ReturnType<typeof createAuthenticator>, user: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    assert.equal((await auth.verify(user, `guess-${i}`)).ok, false);
    times.push(performance.now() - started);
  }
  return times.sort((a, b) => a - b)[1]!;
}

test('users whose hashes cost differently cannot be told from unknown names by how long a wrong password takes', async () => {
  // carol's hash costs eight of dave's: a wrong password for her took eight times as long
  // as one for a name nobody has, which told a guesser that she exists.
  const auth = createAuthenticator({
    users: [
      { username: 'dave', password_hash: costlyHash(2 ** 14, 1) },
      { username: 'carol', password_hash: costlyHash(2 ** 14, 8) },
      { username: 'alice', password: 'alice-pw' },
    ],
    allow_anonymous: false,
  });
  // Each name is timed right after carol, so that a test file running beside this one slows
  // both alike; the bound is loose (the flaw it guards against made the ratio about 1/8).
  for (const name of ['nobody', 'alice', 'dave', 'carol-session-x-', 'zed-session-K1']) {
    const carol = await wrongLoginMs(auth, 'carol');
    const ms = await wrongLoginMs(auth, name);
    assert.ok(ms > carol * 0.35, `a wrong login as ${name} took ${ms.toFixed(0)} ms, carol's ${carol.toFixed(0)} ms`);
  }
});
