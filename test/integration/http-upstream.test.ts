import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { Socket } from 'node:net';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { fromSocksError } from '../../src/outbound/socks5-errors.js';
import { closedPort, socksConnect, startGateway } from '../helpers/index.js';
import { readAll, startDante, startDestination, startMicrosocks, startSquid, startTinyproxy } from '../helpers/upstreams.js';

/** CONNECT through the gateway as `user`: the destination's greeting, or the reply code. */
async function through(port: number, dest: { host: string; port: number }, user: string): Promise<string | number> {
  try {
    const { socket } = await socksConnect(port, dest, 10_000, { userId: user, password: 'pw' });
    return (await readAll(socket)).trim();
  } catch (err) {
    return fromSocksError('gateway', err).rep;
  }
}

function users(...names: string[]): { users: { username: string; password: string }[] } {
  return { users: names.map((username) => ({ username, password: 'pw' })) };
}

function rules(...names: string[]): { name: string; users: string[]; action: string }[] {
  return names.map((name) => ({ name, users: [name], action: name }));
}

test('http upstreams: tinyproxy with Basic auth, squid, a wrong password, a refused destination', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.51', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const squid = await startSquid({ host: '127.0.0.52' });
  t.after(() => squid.close());
  const gw = await startGateway({
    auth: users('tiny', 'squid', 'wrong'),
    upstreams: {
      tiny: { type: 'http', host: tiny.host, port: tiny.port, username: 'user', password: 'pass' },
      squid: { type: 'http', host: squid.host, port: squid.port },
      wrong: { type: 'http', host: tiny.host, port: tiny.port, username: 'user', password: 'not-the-pass' },
    },
    rules: rules('tiny', 'squid', 'wrong'),
    default: 'direct',
  });
  t.after(() => gw.close());
  const to = { host: '127.0.0.1', port: dest.port };
  assert.equal(await through(gw.port, to, 'tiny'), 'hello 127.0.0.51');
  assert.equal(await through(gw.port, to, 'squid'), 'hello 127.0.0.52');
  // tinyproxy answers a wrong password with 401: our credentials refused → 0x01 (see http-errors.ts).
  assert.equal(await through(gw.port, to, 'wrong'), 0x01);
  // squid names the errno it got (X-Squid-Error: ERR_CONNECT_FAIL 111): connection refused → 0x05.
  assert.equal(await through(gw.port, { host: '127.0.0.1', port: await closedPort() }, 'squid'), 0x05);
  assert.equal(await through(gw.port, to, 'tiny'), 'hello 127.0.0.51', 'the gateway is still up');
  const refused = await gw.accessLog((l) => l.user === 'wrong');
  assert.ok(refused, 'the refused request is logged');
  assert.ok(!JSON.stringify(gw.logs).includes('not-the-pass'), 'no password in the logs');
});

test('chains across types: http → socks5, socks5 → http, socks4 via http, and three hops', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.53', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const micro = await startMicrosocks({ host: '127.0.0.54', user: 'ms', pass: 'mspw' });
  t.after(() => micro.close());
  const dante = await startDante({ host: '127.0.0.55' });
  t.after(() => dante.close());
  const squid = await startSquid({ host: '127.0.0.56' });
  t.after(() => squid.close());
  const http = { type: 'http', host: tiny.host, port: tiny.port, username: 'user', password: 'pass' };
  const socks5 = { type: 'socks5', host: micro.host, port: micro.port, username: 'ms', password: 'mspw' };
  const gw = await startGateway({
    auth: users('http_socks5', 'socks5_http', 'socks4_http', 'three'),
    upstreams: {
      tiny: http,
      micro: socks5,
      http_socks5: { ...socks5, via: 'tiny' },
      socks5_http: { ...http, via: 'micro' },
      socks4_http: { type: 'socks4', host: dante.host, port: dante.port, remote_dns: false, via: 'tiny' },
      // tinyproxy → microsocks → squid: the destination sees squid.
      three: { type: 'http', host: squid.host, port: squid.port, via: 'http_socks5' },
    },
    rules: rules('http_socks5', 'socks5_http', 'socks4_http', 'three'),
    default: 'direct',
  });
  t.after(() => gw.close());
  const to = { host: '127.0.0.1', port: dest.port };
  assert.equal(await through(gw.port, to, 'http_socks5'), 'hello 127.0.0.54');
  assert.equal(await through(gw.port, to, 'socks5_http'), 'hello 127.0.0.53');
  assert.equal(await through(gw.port, to, 'socks4_http'), 'hello 127.0.0.55');
  assert.equal(await through(gw.port, to, 'three'), 'hello 127.0.0.56');
  assert.ok(!JSON.stringify(gw.logs).includes('mspw'), 'no password in the logs');
});

test('a socks4 upstream (Dante): names resolved here and sent as IPv4, an IPv6 destination gets 0x08', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const dante = await startDante({ host: '127.0.0.57' });
  t.after(() => dante.close());
  const gw = await startGateway({
    auth: users('four'),
    dns: { hosts: { 'dest.test': '127.0.0.1' } },
    upstreams: { four: { type: 'socks4', host: dante.host, port: dante.port, remote_dns: false, username: 'crawler' } },
    rules: rules('four'),
    default: 'direct',
  });
  t.after(() => gw.close());
  assert.equal(await through(gw.port, { host: 'dest.test', port: dest.port }, 'four'), 'hello 127.0.0.57');
  assert.equal(await through(gw.port, { host: '::1', port: dest.port }, 'four'), 0x08);
  // Dante answers 0x5B for a destination it cannot reach: SOCKS4's one refusal, 0x01.
  assert.equal(await through(gw.port, { host: '127.0.0.1', port: await closedPort() }, 'four'), 0x01);
  assert.equal(await through(gw.port, { host: '127.0.0.1', port: dest.port }, 'four'), 'hello 127.0.0.57');
});

test('a pool of an http member (object form, weight, tags) and a socks4 member: both serve CONNECT, only socks4 serves BIND', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.58', user: 'user', pass: 'tiny-secret' });
  t.after(() => tiny.close());
  const dante = await startDante({ host: '127.0.0.59' });
  t.after(() => dante.close());
  const httpMember = `http://user:tiny-secret@${tiny.host}:${tiny.port}`;
  const gw = await startGateway({
    upstreams: {
      mixed: {
        type: 'pool',
        strategy: 'round-robin',
        members: [{ url: httpMember, weight: 2, tags: { country: 'de' } }, `socks4://${dante.host}:${dante.port}#country=fr`],
      },
    },
    default: 'mixed',
  });
  t.after(() => gw.close());
  const seen = new Set<string | number>();
  for (let i = 0; i < 4; i++) {
    try {
      const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 10_000);
      seen.add((await readAll(socket)).trim());
    } catch (err) {
      seen.add(fromSocksError('gateway', err).rep);
    }
  }
  assert.deepEqual([...seen].sort(), ['hello 127.0.0.58', 'hello 127.0.0.59']);
  const line = await gw.accessLog((l) => l.member === `http://user@${tiny.host}:${tiny.port}`);
  assert.ok(line, 'the access log names the http member without its password');

  for (let i = 0; i < 2; i++) {
    const client = new SocksClient({ proxy: { host: '127.0.0.1', port: gw.port, type: 5 }, command: 'bind', destination: { host: '127.0.0.1', port: 0 }, timeout: 5_000 });
    const bound = once(client, 'bound') as Promise<[{ remoteHost?: SocksRemoteHost; socket: Socket }]>;
    client.connect();
    const [{ remoteHost, socket }] = await bound;
    assert.equal(remoteHost?.host, dante.host, 'Dante (the socks4 member) listens for the peer');
    client.on('error', () => {}); // the close below, before any peer, is reported as one
    socket.destroy();
  }
  assert.ok(!JSON.stringify(gw.logs).includes('tiny-secret'), 'no password in the logs');
});
