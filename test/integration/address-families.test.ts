// Which family a `cidrs` network holds, on real sockets: an IPv6 network (::/0 included) holds
// IPv6 destinations only; an IPv4 destination, written plain or IPv4-mapped, is an IPv4 address.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { socksConnect, startEchoServer, startGateway, type TestGateway } from '../helpers/index.js';

/** CONNECT through the gateway: true when the echo came back. */
async function relays(gw: TestGateway, host: string, port: number): Promise<boolean> {
  try {
    const { socket } = await socksConnect(gw.port, { host, port }, 2_000);
    socket.write('ping');
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    socket.destroy();
    return chunk.toString() === 'ping';
  } catch {
    return false;
  }
}

/** [rule, reply code, error] of the `nth` (from 1) request's access-log line for `host`. */
async function outcome(gw: TestGateway, host: string, port: number, nth = 1): Promise<unknown[]> {
  const dest = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  let seen = 0;
  const line = await gw.accessLog((l) => l['dest'] === dest && ++seen === nth);
  return [line?.['rule'], line?.['rep'], line?.['error']];
}

test('a rule for ::/0 takes IPv6 destinations only; IPv4 ones, plain or mapped, go on to the next rule', async (t) => {
  const echo4 = await startEchoServer('127.0.0.1');
  t.after(() => echo4.close());
  const echo6 = await startEchoServer('::1');
  t.after(() => echo6.close());
  const gw = await startGateway({ rules: [{ name: 'all-v6', cidrs: ['::/0'], action: 'block' }], default: 'direct' });
  t.after(() => gw.close());

  for (const host of ['127.0.0.1', '::ffff:127.0.0.1']) {
    assert.equal(await relays(gw, host, echo4.port), true, `${host} is an IPv4 address, not in ::/0`);
    assert.deepEqual(await outcome(gw, host, echo4.port), ['default', 0, undefined], host);
  }
  assert.equal(await relays(gw, '::1', echo6.port), false, '::1 is in ::/0');
  assert.deepEqual((await outcome(gw, '::1', echo6.port)).slice(0, 2), ['all-v6', 2]);
  assert.deepEqual(echo6.peers, []);
});

test('a direct rule for ::/0 lifts the egress guard for IPv6 addresses, never for IPv4 ones', async (t) => {
  const echo4 = await startEchoServer('127.0.0.1');
  t.after(() => echo4.close());
  const echo6 = await startEchoServer('::1');
  t.after(() => echo6.close());
  const gw = await startGateway({
    rules: [{ name: 'v6-direct', cidrs: ['::/0'], action: 'direct' }],
    default: 'direct',
    egress: { deny: ['loopback'] },
  });
  t.after(() => gw.close());

  for (const host of ['127.0.0.1', '::ffff:127.0.0.1']) {
    assert.equal(await relays(gw, host, echo4.port), false, host);
    assert.deepEqual(await outcome(gw, host, echo4.port), ['default', 2, 'egress denied'], host);
  }
  assert.deepEqual(echo4.peers, [], 'nothing reached the IPv4 loopback server');
  assert.equal(await relays(gw, '::1', echo6.port), true, 'the rule names ::1 in its own cidrs');
});
