// Password guessing against a running gateway: the guesser's address is slowed, then
// refused without hashing, while other clients log in at once; and a flood of wrong
// passwords cannot hold up name lookups through the system resolver (same threadpool).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { parseConfig } from '../../src/config/load.js';
import { encodeAuthRequest, encodeGreeting, encodeRequest } from '../../src/protocol/messages.js';
import { Cmd } from '../../src/protocol/constants.js';
import { hashPassword } from '../../src/server/auth.js';
import { HASH_SLOTS, hashCount, hashesWaiting } from '../../src/server/login-throttle.js';
import { curl } from '../helpers/curl.js';
import { readBytes, startEchoServer, startGateway, startHttpServer, type TestGateway } from '../helpers/index.js';
import { stringify } from 'yaml';

const BOB_HASH = await hashPassword('bob-pw');
// Carol's hash matches no password and costs sixteen of bob's (p = 16: the same memory, 16
// passes). Every login runs each configured cost once (her cost and bob's), so each holds a
// hashing slot that long, whatever the machine's speed: what must not wait for a guess (another
// address's login, a name lookup) runs beside it.
const CAROL_HASH = `scrypt$32768$8$16$${randomBytes(16).toString('base64')}$${randomBytes(32).toString('base64')}`;
// These tests' work is scrypt hashing, which a loaded runner slows the most (12 s alone took
// 59 s beside other test files under load): a bound for a hang, beyond the default.
const HASHING = { timeout: 150_000 };

const AUTH = {
  users: [
    { username: 'bob', password_hash: BOB_HASH },
    { username: 'alice', password: 'alice-pw' },
    { username: 'carol', password_hash: CAROL_HASH },
  ],
};

/** Greeting + RFC 1929 login from `localAddress`; resolves to the status byte (0 = accepted) and the socket. */
async function login(gw: TestGateway, user: string, password: string, localAddress = '127.0.0.1'): Promise<{ status: number | undefined; s: Socket }> {
  const s = connect({ host: '127.0.0.1', port: gw.port, localAddress });
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([encodeGreeting([2]), encodeAuthRequest(user, password)]));
  const reply = await readBytes(s, 4, 45_000);
  return { status: reply.length === 4 ? reply[3] : undefined, s };
}

async function refusals(gw: TestGateway, reason: string): Promise<number> {
  const m = await gw.gw.metrics.registry.getSingleMetric('socksgate_auth_refusals_total')?.get();
  return m?.values.find((v) => v.labels['reason'] === reason)?.value ?? 0;
}

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 5) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 5));
  }
  return cond();
}

test('a guesser is slowed, then refused without hashing, while another address logs in at once', HASHING, async (t) => {
  const gw = await startGateway({ auth: AUTH, limits: { handshake_timeout: '2m', auth_failures: { max: 6, window: '1m', block: '1m' } } });
  t.after(() => gw.close());

  for (let i = 0; i < 4; i++) {
    const r = await login(gw, 'bob', `guess-${i}`);
    r.s.destroy();
    assert.equal(r.status, 1);
  }
  // The fifth failure takes carol's cost, sixteen of bob's, to check (then a 1.6 s delay), as
  // every login does now that her hash is configured; a login from another address meanwhile
  // is hashed beside it, in the second slot, not after it.
  const hashesAtFifth = hashCount();
  const slow = login(gw, 'carol', 'guess-4');
  assert.ok(await until(() => hashCount() > hashesAtFifth), "the guesser's fifth password is being hashed");
  const otherLogin = login(gw, 'bob', 'bob-pw', '127.0.0.2');
  assert.ok(await until(() => hashCount() > hashesAtFifth + 1), "the other address's password is being hashed");
  assert.equal(await refusals(gw, 'failed'), 4, "the other address's login is hashed while the guesser's fifth is still being checked");
  const other = await otherLogin;
  t.after(() => other.s.destroy());
  assert.equal(other.status, 0);
  const fifth = await slow;
  fifth.s.destroy();
  assert.equal(fifth.status, 1);
  assert.equal(await refusals(gw, 'failed'), 5);

  const sixth = await login(gw, 'bob', 'guess-5'); // reaches max: blocked from now on
  sixth.s.destroy();
  assert.equal(sixth.status, 1);
  const hashesBefore = hashCount();
  const refusedLines = (): number => gw.logs.filter((l) => l['msg'] === 'login refused' && l['client'] === '127.0.0.1').length;
  const linesBefore = refusedLines();
  const blocked = await Promise.all([
    login(gw, 'bob', 'bob-pw'),
    login(gw, 'alice', 'alice-pw'),
    ...Array.from({ length: 4 }, (_, i) => login(gw, 'bob', `more-${i}`)),
  ]);
  for (const b of blocked) b.s.destroy();
  assert.deepEqual(
    blocked.map((b) => b.status),
    [1, 1, 1, 1, 1, 1],
    'while blocked even the right passwords are refused',
  );
  assert.equal(hashCount(), hashesBefore, 'and no password hash ran for them');
  assert.equal(await refusals(gw, 'blocked'), 6);
  assert.equal(await refusals(gw, 'failed'), 6);
  const limits = await gw.gw.metrics.registry.getSingleMetric('socksgate_limit_refusals_total')?.get();
  assert.equal(limits?.values.find((v) => v.labels['limit'] === 'auth_failures')?.value, 6, 'and as refusals by the auth_failures limit');
  const again = await login(gw, 'alice', 'alice-pw', '127.0.0.2');
  again.s.destroy();
  assert.equal(again.status, 0, 'the other address is still served');
  assert.ok(linesBefore >= 1, 'failed logins are logged');
  const batch = refusedLines() - linesBefore;
  assert.ok(batch <= 2, `six refusals at once are logged at most once a second per address (${batch} lines)`);
});

test('the refusal series exist at 0 before the first refused login, so the first block shows in increase()', async (t) => {
  const gw = await startGateway({ auth: AUTH, limits: { auth_failures: { max: 2, window: '1m', block: '1m' } } });
  t.after(() => gw.close());
  const scrape = async (): Promise<string> => gw.gw.metrics.registry.metrics();
  const before = await scrape();
  assert.match(before, /^socksgate_auth_refusals_total\{reason="failed"\} 0$/m);
  assert.match(before, /^socksgate_auth_refusals_total\{reason="blocked"\} 0$/m);
  assert.match(before, /^socksgate_limit_refusals_total\{limit="auth_failures"\} 0$/m);
  for (const password of ['guess-0', 'guess-1', 'alice-pw']) (await login(gw, 'alice', password)).s.destroy();
  const after = await scrape();
  assert.match(after, /^socksgate_auth_refusals_total\{reason="failed"\} 2$/m);
  assert.match(after, /^socksgate_auth_refusals_total\{reason="blocked"\} 1$/m);
  assert.match(after, /^socksgate_limit_refusals_total\{limit="auth_failures"\} 1$/m);
});

test('wrong passwords in flight do not delay a CONNECT by name through the system resolver', HASHING, async (t) => {
  const echo = await startEchoServer('127.0.0.1');
  t.after(() => echo.close());
  // No dns.servers: names go to getaddrinfo on the libuv threadpool, where scrypt runs too.
  // Queued logins may wait long on a loaded machine: the handshake timeout must not cut them off.
  const gw = await startGateway({ auth: AUTH, limits: { handshake_timeout: '2m', auth_failures: { max: 1000, window: '1m', block: '1m' } } });
  t.after(() => gw.close());
  const first = await login(gw, 'bob', 'bob-pw');
  first.s.destroy();
  assert.equal(first.status, 0, 'bob is verified once, then remembered');

  // Wrong passwords for carol from N addresses (per-address ordering alone would not bound
  // them): more than the threadpool's four threads, each hash sixteen times bob's.
  const N = 8;
  const before = hashCount();
  const guesses = Array.from({ length: N }, (_, i) =>
    login(gw, 'carol', `wrong-${i}`, `127.0.0.${10 + i}`).then((r) => {
      r.s.destroy();
      return r.status;
    }),
  );
  assert.ok(await until(() => hashCount() - before >= Math.min(HASH_SLOTS, N)), 'the wrong passwords are being hashed');

  const { status, s } = await login(gw, 'bob', 'bob-pw');
  t.after(() => s.destroy());
  assert.equal(status, 0);
  s.write(encodeRequest(Cmd.CONNECT, { host: 'localhost', port: echo.port }));
  const reply = await readBytes(s, 10, 45_000);
  assert.equal(reply[1], 0, 'CONNECT to localhost succeeded');
  // Had the hashes taken every thread, getaddrinfo would have waited for one to end, and its
  // failure is counted before the lookup's answer is read.
  assert.equal(await refusals(gw, 'failed'), 0, 'before any of the wrong passwords was hashed to its end');
  assert.equal(hashCount() - before, HASH_SLOTS, 'while the others still waited for a hashing slot');
  assert.deepEqual(await Promise.all(guesses), new Array(N).fill(1));
});

test('logins whose clients reset while they waited for a hashing slot are not hashed, and their connections end at once', async (t) => {
  const gw = await startGateway({ auth: AUTH, limits: { handshake_timeout: '2m', auth_failures: { max: 1000, window: '1m', block: '1m' } } });
  t.after(() => gw.close());
  const N = 16;
  const before = hashCount();
  // From 16 addresses, so they queue for the process's hashing slots, not behind each other.
  const clients = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const s = connect({ host: '127.0.0.1', port: gw.port, localAddress: `127.0.0.${40 + i}` });
      s.on('error', () => {});
      await once(s, 'connect');
      s.write(Buffer.concat([encodeGreeting([2]), encodeAuthRequest('bob', `left-${i}`)]));
      return s;
    }),
  );
  assert.ok(await until(() => hashCount() - before + hashesWaiting() === N), 'every login is being hashed or waits for a slot');
  // Reset, as a client killed mid-login does: the gateway learns at once that it is gone.
  for (const s of clients) s.resetAndDestroy();
  assert.ok(await until(() => gw.gw.activeSessions === 0, 30_000), 'every connection ended');
  const hashed = hashCount() - before;
  assert.ok(hashed <= 6, `only the hashes already running when the clients left ran (${hashed} of ${N})`);
  // The slots are free for the next one.
  const { status, s } = await login(gw, 'bob', 'bob-pw');
  s.destroy();
  assert.equal(status, 0);
});

test('logins still queued for a hashing slot at the handshake deadline are cut without being hashed', async (t) => {
  const gw = await startGateway({ auth: AUTH, limits: { handshake_timeout: '300ms', auth_failures: { max: 1000, window: '1m', block: '1m' } } });
  t.after(() => gw.close());
  const N = 64;
  const before = hashCount();
  const answers = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const { status, s } = await login(gw, 'carol', `late-${i}`, `127.0.1.${i + 1}`);
      s.destroy();
      return status;
    }),
  );
  assert.ok(await until(() => gw.gw.activeSessions === 0, 60_000), 'every connection ended');
  const hashed = hashCount() - before;
  const refused = answers.filter((a) => a === 1).length;
  assert.equal(refused + answers.filter((a) => a === undefined).length, N, 'each login is refused or cut');
  assert.ok(refused < N, `some were cut (${refused} of ${N} answered)`);
  // Only the logins that got a hashing slot before the deadline are hashed: carol's hash is
  // sixteen of bob's, so hardly more than the first HASH_SLOTS, however fast the machine. Cut
  // ones still in the queue would all be hashed after their clients were gone, N of N.
  assert.ok(hashed < N / 2, `the queued ones were not hashed (${hashed} hashes of ${N} logins)`);
  const cut = gw.logs.filter((l) => l['msg'] === 'session end' && l['error'] === 'handshake timeout').length;
  assert.ok(cut >= N - refused, `the cut ones are logged as handshake timeouts (${cut} for ${N - refused} cut)`);
});

test('a reload that keeps auth keeps the authenticator (its remembered logins); a changed auth replaces it', async (t) => {
  const gw = await startGateway({ auth: AUTH });
  t.after(() => gw.close());
  const ok = await login(gw, 'bob', 'bob-pw');
  ok.s.destroy();
  assert.equal(ok.status, 0);
  const auth = gw.gw.snapshot.auth;
  const cfg = (extra: Record<string, unknown>) =>
    parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], auth: AUTH, ...extra }), '/tmp/socksgate-test.yaml', {});
  await gw.gw.reload(cfg({ rules: [{ name: 'x', ports: [1], action: 'block' }] }));
  assert.equal(gw.gw.snapshot.auth, auth, 'same auth: same authenticator');
  const hashes = hashCount();
  const again = await login(gw, 'bob', 'bob-pw');
  again.s.destroy();
  assert.equal(again.status, 0);
  assert.equal(hashCount(), hashes, 'bob is still remembered: no hash');
  await gw.gw.reload(cfg({ limits: { auth_failures: { max: 3 } } }));
  assert.notEqual(gw.gw.snapshot.auth, auth, 'other auth_failures limits: a new authenticator');
});

test('a reload that changes auth keeps the failures counted and the addresses blocked', async (t) => {
  const users = [{ username: 'alice', password: 'alice-pw' }];
  const throttle = { max: 3, window: '1m', block: '5m' };
  const gw = await startGateway({ auth: { users }, limits: { auth_failures: throttle } });
  t.after(() => gw.close());
  const cfg = (auth: Record<string, unknown>, max: number) =>
    parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], auth, limits: { auth_failures: { ...throttle, max } } }), '/tmp/socksgate-test.yaml', {});
  const attempt = async (password: string, localAddress = '127.0.0.1'): Promise<number | undefined> => {
    const r = await login(gw, 'alice', password, localAddress);
    r.s.destroy();
    return r.status;
  };

  // Two failures, then a new user: the third failure after the reload still blocks.
  assert.equal(await attempt('guess-1'), 1);
  assert.equal(await attempt('guess-2'), 1);
  await gw.gw.reload(cfg({ users: [...users, { username: 'dave', password: 'dave-pw' }] }, 3));
  assert.equal(await attempt('guess-3'), 1);
  assert.equal(await attempt('alice-pw'), 1, 'blocked: the failures before the reload counted');

  // Another change of the users, and of the limits: the block in force stays.
  await gw.gw.reload(cfg({ users }, 5));
  assert.equal(await attempt('alice-pw'), 1, 'still blocked after a reload that changed auth and auth_failures');
  assert.equal(await attempt('alice-pw', '127.0.0.2'), 0, 'another address logs in');
});

test('a login refused because its address is blocked is logged as such, not as a wrong password (SOCKS5 and HTTP)', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] }, limits: { auth_failures: { max: 2, window: '1m', block: '5m' } } });
  t.after(() => gw.close());
  for (const guess of ['guess-1', 'guess-2']) {
    const r = await login(gw, 'alice', guess);
    r.s.destroy();
    assert.equal(r.status, 1);
  }
  const wrong = (): number => gw.logs.filter((l) => l['msg'] === 'session end' && l['error'] === 'authentication failed').length;
  assert.ok(await until(() => wrong() === 2), 'the wrong passwords are logged as such');

  const right = await login(gw, 'alice', 'alice-pw');
  right.s.destroy();
  assert.equal(right.status, 1, 'refused while blocked');
  const socks = await gw.accessLog((l) => l.protocol === 'socks5' && l.error !== 'authentication failed');
  assert.equal(socks?.error, 'too many failed logins', 'the right password was not what was wrong');

  const res = await curl(['-w', '\n%{http_code}', '-x', `http://alice:alice-pw@127.0.0.1:${gw.port}`, `${http.url}/`]);
  // 429, as PRODUCT.md answers a per-source limit: a 407 would ask again for a password that is right.
  assert.equal(res.stdout, 'too many failed logins\n\n429');
  assert.equal((await gw.accessLog((l) => l.protocol === 'http'))?.error, 'too many failed logins');
});

test('a crawler whose session parameter is malformed, with the right password, is told so every time and not blocked as a guesser', async (t) => {
  const http = await startHttpServer();
  t.after(() => http.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'alice-pw' }] }, limits: { auth_failures: { max: 2, window: '1m', block: '5m' } } });
  t.after(() => gw.close());
  const through = (user: string, password: string) => curl(['-s', '-w', '\n%{http_code}', '-x', `http://${user}:${password}@127.0.0.1:${gw.port}`, `${http.url}/`]);
  // A session id with a "-" in it (a uuid) is no parameter string: more attempts than `max`.
  for (let i = 0; i < 3; i++) {
    const res = await through('alice-session-3f2a-9c1e', 'alice-pw');
    assert.match(res.stdout, /^malformed session parameters in the username .*\n\n407$/, `attempt ${i + 1}`);
  }
  const fixed = await through('alice-session-3f2a9c1e', 'alice-pw');
  assert.match(fixed.stdout, /\n200$/, 'the corrected username logs in');
  assert.equal(await refusals(gw, 'blocked'), 0);

  // A wrong password is a guess whatever the username around it: it still counts.
  for (let i = 0; i < 2; i++) assert.match((await through('alice-session-3f2a-9c1e', 'guess')).stdout, /\n407$/);
  assert.match((await through('alice-session-K1', 'alice-pw')).stdout, /^too many failed logins\n\n429$/);
});
