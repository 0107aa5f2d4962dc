// CONNECT through a SOCKS5 upstream when something cannot be carried: a BND.ADDR our own
// reply cannot encode (the client is refused, the dialed socket closed with it), a reply of
// an address type RFC 1928 does not have, or member credentials longer than RFC 1929 allows,
// or a SOCKS4 USERID longer than 255 bytes (refused before anything is sent).
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { Cmd } from '../../src/protocol/constants.js';
import { encodeGreeting, encodeRequest } from '../../src/protocol/messages.js';
import { SocksClient } from 'socks';
import { closedWithin, readBytes, startEchoServer, startGateway, type TestGateway } from '../helpers/index.js';
import { echoOnce, httpConnectRaw } from '../helpers/raw-proxy.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import { startJunkLoginSocks, startRecordingSocks, startScriptedSocks } from '../helpers/instruments.js';
import { startDante, startMicrosocks } from '../helpers/upstreams.js';

/** ATYP 3 with 100 bytes that are not UTF-8: the `socks` client reads them as 100 U+FFFD, 300 bytes re-encoded. */
const UNENCODABLE_BND = Buffer.concat([Buffer.from([5, 0, 0, 3, 100]), Buffer.alloc(100, 0xff), Buffer.from([0x1f, 0x90])]);

/**
 * A gateway that sends example.test through the SOCKS5 upstream `up` (`upstream`: its port and
 * login), and a raw client whose greeting and CONNECT example.test:80 are sent in one write.
 */
async function connectViaUp(t: TestContext, upstream: { port: number; username?: string; password?: string }): Promise<{ gw: TestGateway; s: Socket }> {
  const gw = await startGateway({
    upstreams: { up: { type: 'socks5', host: '127.0.0.1', ...upstream } },
    rules: [{ name: 'via-up', domains: ['example.test'], action: 'up' }],
  });
  t.after(() => gw.close());
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: 'example.test', port: 80 })]));
  return { gw, s };
}

test('an upstream reply no SOCKS5 reply can carry: the client gets 0x01 and the upstream socket is closed', async (t) => {
  const upstream = await startScriptedSocks(UNENCODABLE_BND);
  t.after(() => upstream.close());
  const { gw, s } = await connectViaUp(t, { port: upstream.port });
  const reply = await readBytes(s, 4);
  assert.deepEqual([...reply], [5, 0, 5, 1], 'method 0x00, then reply 0x01 (general failure)');
  assert.ok(await closedWithin(s), 'the client is closed');

  const dialed = await upstream.accepted;
  assert.ok(await closedWithin(dialed), 'the socket the gateway dialed to the upstream is closed too');
  const line = await gw.accessLog((l) => l['dest'] === 'example.test:80');
  assert.equal(line?.['rep'], 1);
  assert.equal(line?.['outbound'], 'up');
  assert.match(String(line?.['error']), /./);
});

test('a member username filled past the 255 bytes SOCKS5 can carry: the client gets 0x01, the member is not blamed, the gateway stays up', async (t) => {
  const micro = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => micro.close());
  const recording = await startRecordingSocks('127.0.0.1', { host: micro.host, port: micro.port });
  t.after(() => recording.close());
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const member = { type: 'socks5', host: '127.0.0.1', port: recording.port, username: 'customer-c1234567-zone-residential-session-{session}', password: 'pw' };
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'alice-pw' }] },
    upstreams: { up: member },
    rules: [{ name: 'via-up', ports: [echo.port], action: 'up' }],
  });
  t.after(() => gw.close());
  const login = (session: string) => ({ host: '127.0.0.1', port: gw.port, type: 5 as const, userId: `alice-session-${session}`, password: 'alice-pw' });
  const destination = { host: '127.0.0.1', port: echo.port };

  // 43 bytes of template and 240 of session: 283 bytes.
  await assert.rejects(SocksClient.createConnection({ proxy: login('a'.repeat(240)), command: 'connect', destination, timeout: 5_000 }), /rejected connection - Failure/);
  const line = await gw.accessLog((l) => String(l['user']) === 'alice' && l['rep'] === 1);
  assert.match(String(line?.['error']), /longer than the 255 bytes/);
  assert.doesNotMatch(String(line?.['error']), /customer-c1234567/, 'no credential in the log');
  assert.equal(recording.logins.length, 0, 'nothing was sent to the member');

  // The gateway is up, and the member still serves a session that fits.
  const ok = await SocksClient.createConnection({ proxy: login('short'), command: 'connect', destination, timeout: 5_000 });
  t.after(() => ok.socket.destroy());
  ok.socket.write('still up');
  assert.equal((await readBytes(ok.socket, 8)).toString(), 'still up');
  assert.deepEqual(recording.logins.map((l) => l.username), ['customer-c1234567-zone-residential-session-short']);
});

test('a SOCKS4 member USERID filled past 255 bytes by an HTTP client\'s long session is not sent: 502, and the member is not ejected for it', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // Dante drops a request whose USERID runs to a couple of KiB: sent, it failed the member.
  const dante = await startDante({ host: '127.0.0.1' });
  t.after(() => dante.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'alice-pw' }] },
    upstreams: { crawl: { type: 'pool', ban_after: 2, members: [`socks4://${encodeURIComponent('cust-session-{session}')}@127.0.0.1:${dante.port}`] } },
    default: 'crawl',
  });
  t.after(() => gw.close());
  for (let i = 0; i < 3; i++) {
    const long = await httpConnectRaw(gw.port, echo.port, { user: `alice-session-${'s'.repeat(3_000)}`, password: 'alice-pw' });
    long.socket.destroy();
    assert.equal(long.code, 502, `long session ${i}`);
  }
  const pool = gw.gw.snapshot.outbounds.get('crawl');
  assert.ok(pool && isPoolOutbound(pool));
  assert.equal(pool.stats()[0]!.healthy, true, 'the member was ejected for a client\'s session');
  const line = await gw.accessLog((l) => l['status'] === 502);
  assert.match(String(line?.['error']), /USERID longer than the 255 bytes/);
  const ok = await httpConnectRaw(gw.port, echo.port, { user: 'alice-session-short', password: 'alice-pw' });
  t.after(() => ok.socket.destroy());
  assert.equal(ok.code, 200);
  assert.equal(await echoOnce(ok.socket, 'still served'), 'still served');
});

test('an upstream success reply with an unknown address type (0x09) is a failed handshake: 0x01, and none of its bytes reach the client', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // ATYP 0x09, then a few bytes after it.
  // On ::1: its address, were it named by it, would read "::1:PORT".
  const upstream = await startScriptedSocks(Buffer.from([5, 0, 0, 9, 1, 2, 3, 4, 0, 80, 0x4f, 0x4b]), '::1');
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { up: { type: 'socks5', host: '::1', port: upstream.port } },
    rules: [{ name: 'via-up', ports: [echo.port], action: 'up' }],
  });
  t.after(() => gw.close());
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  const got: Buffer[] = [];
  s.on('data', (c: Buffer) => got.push(c));
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: '127.0.0.1', port: echo.port })]));
  assert.ok(await closedWithin(s, 5_000));
  assert.deepEqual([...Buffer.concat(got).subarray(0, 4)], [5, 0, 5, 1], 'method 0x00, then reply 0x01');
  assert.ok(!Buffer.concat(got).includes(Buffer.from([9, 1, 2, 3, 4])), 'no byte of the upstream reply reached the client');
  const line = await gw.accessLog((l) => l['rule'] === 'via-up');
  // Named as every other upstream failure is: by its name, not its address.
  assert.equal(line?.['error'], 'upstream "up": reply with an unknown address type');
});

test("an upstream's 0x07 or 0x08 is an upstream failure to an HTTP client (502), not its bad request (400)", async (t) => {
  for (const rep of [7, 8]) {
    const upstream = await startScriptedSocks(Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]));
    t.after(() => upstream.close());
    const gw = await startGateway({ upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } }, default: 'up' });
    t.after(() => gw.close());
    const answer = await httpConnectRaw(gw.port, 80);
    answer.socket.destroy();
    assert.equal(answer.code, 502, `upstream reply ${rep}`);
  }
});

test('an upstream reply whose VER is not 5 is a failed handshake, not a refusal with its REP: a pool tries its next member', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const echoThroughPool = await startEchoServer();
  t.after(() => echoThroughPool.close());
  // VER 0 where RFC 1928 §6 has 5, then a REP of 0x05: no refusal of the destination.
  const broken = await startScriptedSocks(Buffer.from([0, 5, 0, 1, 0, 0, 0, 0, 0, 0]));
  t.after(() => broken.close());
  const micro = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => micro.close());
  const gw = await startGateway({
    upstreams: {
      alone: { type: 'socks5', host: '127.0.0.1', port: broken.port },
      pool: { type: 'pool', strategy: 'failover', members: [`socks5://127.0.0.1:${broken.port}`, `socks5://127.0.0.1:${micro.port}`] },
    },
    rules: [
      { name: 'alone', ports: [echo.port], action: 'alone' },
      { name: 'pool', ports: [echoThroughPool.port], action: 'pool' },
    ],
  });
  t.after(() => gw.close());

  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.CONNECT, { host: '127.0.0.1', port: echo.port })]));
  assert.deepEqual([...(await readBytes(s, 4))], [5, 0, 5, 1], 'method 0x00, then reply 0x01, not the 0x05 that followed VER 0');
  const line = await gw.accessLog((l) => l['rule'] === 'alone');
  assert.equal(line?.['error'], 'upstream "alone": reply with version 0');

  // Through the pool the broken member is at fault: the next one carries the request.
  const destination = { host: '127.0.0.1', port: echoThroughPool.port };
  const ok = await SocksClient.createConnection({ proxy: { host: '127.0.0.1', port: gw.port, type: 5 }, command: 'connect', destination, timeout: 5_000 });
  t.after(() => ok.socket.destroy());
  ok.socket.write('next member');
  assert.equal((await readBytes(ok.socket, 11)).toString(), 'next member');
});

test('an upstream that answers our username/password login with junk: 0x01, and the log says the login answer was malformed', async (t) => {
  // Six bytes where RFC 1929 §2 answers two (VER 0x01, STATUS).
  const upstream = await startJunkLoginSocks(Buffer.from('junk!\n'));
  t.after(() => upstream.close());
  const { gw, s } = await connectViaUp(t, { port: upstream.port, username: 'gw', password: 'secret' });
  assert.deepEqual([...(await readBytes(s, 4))], [5, 0, 5, 1], 'method 0x00, then reply 0x01 (general failure)');
  const line = await gw.accessLog((l) => l['dest'] === 'example.test:80');
  assert.equal(line?.['rep'], 1);
  assert.equal(line?.['error'], 'upstream "up": malformed answer to our username/password login (RFC 1929 §2 answers 2 bytes)');
});
