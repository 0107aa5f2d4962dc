import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { pino } from 'pino';
import { SocksClient, type SocksRemoteHost } from 'socks';
import { openSocks5Bind } from '../../src/outbound/socks5-bind.js';
import { isPoolOutbound, isUpstreamOutbound } from '../../src/outbound/stats.js';
import { rawBind, readReply, resetDuringBindLookup } from '../helpers/bind.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { startGateway, type TestGateway } from '../helpers/index.js';
import { startRecordingSocks, startScriptedSocks } from '../helpers/instruments.js';
import { startDante, startMicrosocks } from '../helpers/upstreams.js';

const ctx = () => ({ signal: new AbortController().signal, log: pino({ level: 'silent' }), sessionKey: 't' });

test('BIND through Dante: it listens on its address, the peer connects there, bytes flow', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  t.after(() => handle.close());
  assert.equal(handle.listening.host, '127.0.0.9');
  assert.notEqual(handle.listening.port, 0);
  const peer = connect({ host: handle.listening.host, port: handle.listening.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const { socket, peer: from } = await handle.accepted();
  t.after(() => socket.destroy());
  assert.deepEqual(from, { host: '127.0.0.1', port: peer.localPort });
  peer.write('hello binder');
  socket.resume();
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'hello binder');
});

test('closing a Dante BIND before a peer rejects accepted()', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const handle = await openSocks5Bind({ host: dante.host, port: dante.port }, { host: '127.0.0.1', port: 0 }, ctx(), { connectTimeout: 3_000 });
  const waiting = handle.accepted();
  handle.close();
  await assert.rejects(waiting);
});

/**
 * A SOCKS5 BIND (for `dest`, the expected peer) through the gateway at `gwPort`: the first reply
 * names `listenHost` (Dante's own address), a peer connects there from 127.0.0.1, the second
 * reply names the peer, and bytes reach it.
 */
async function bindThrough(t: TestContext, gwPort: number, listenHost: string, dest = { host: '127.0.0.1', port: 0 }): Promise<void> {
  const client = new SocksClient({ proxy: { host: '127.0.0.1', port: gwPort, type: 5 }, command: 'bind', destination: dest, timeout: 5_000 });
  const first = once(client, 'bound') as Promise<[{ remoteHost?: SocksRemoteHost }]>;
  const established = once(client, 'established') as Promise<[{ socket: Socket; remoteHost?: SocksRemoteHost }]>;
  established.catch(() => {});
  client.connect(); // an 'error' event rejects both
  const [bound] = await first;
  assert.equal(bound.remoteHost?.host, listenHost, 'the upstream listens on its own address');
  const peer = connect({ host: listenHost, port: bound.remoteHost!.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const [{ socket, remoteHost }] = await established;
  t.after(() => socket.destroy());
  assert.equal(remoteHost?.port, peer.localPort);
  socket.write('to peer');
  const [chunk] = (await once(peer, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'to peer');
}

/** A gateway whose BIND requests go to a Dante on 127.0.0.9; both stop with the test. */
async function bindingThroughDante(t: TestContext): Promise<TestGateway> {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const gw = await startGateway({
    upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
  });
  t.after(() => gw.close());
  return gw;
}

test('BIND routed to a Dante upstream: both replies come from Dante and bytes flow', async (t) => {
  const gw = await bindingThroughDante(t);
  await bindThrough(t, gw.port, '127.0.0.9');
});

test("BIND routed to Dante, a peer from another address than DST.ADDR: Dante's second reply 0x02 reaches the client as 0x02", async (t) => {
  const gw = await bindingThroughDante(t);
  const { s } = await rawBind(gw.port, { host: '127.0.0.8', port: 0 });
  t.after(() => s.destroy());
  const first = await readReply(s);
  assert.equal(first?.rep, 0);
  assert.equal(first?.bound.host, '127.0.0.9');
  // Dante expects 127.0.0.8 (RFC 1928 §4: DST.ADDR checks the peer); this one comes from 127.0.0.1.
  const peer = connect({ host: first!.bound.host, port: first!.bound.port, localAddress: '127.0.0.1' });
  peer.on('error', () => {});
  t.after(() => peer.destroy());
  assert.equal((await readReply(s))?.rep, 0x02, "the upstream's own code, as for its first reply and for CONNECT");
  const line = await gw.accessLog((l) => l['cmd'] === 'bind');
  assert.equal(line?.['rep'], 0x02);
});

test('BIND for a name only the gateway knows, through a socks5 upstream with remote_dns false: the upstream is asked for the address, listens, and the peer gets through', async (t) => {
  const dante = await startDante({ host: '127.0.0.169' });
  t.after(() => dante.close());
  const gw = await startGateway({
    upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port, remote_dns: false } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
    // Dante cannot resolve it (.test is reserved, RFC 6761): sent the name, it answers 0x04.
    dns: { hosts: { 'peer.test': '127.0.0.1' } },
  });
  t.after(() => gw.close());
  await bindThrough(t, gw.port, '127.0.0.169', { host: 'peer.test', port: 0 });
});

for (const type of ['socks5', 'socks4'] as const) {
  test(`BIND through a chain to a ${type} upstream: the control connection goes through the hop, Dante listens on its own address, bytes flow`, async (t) => {
    const relay = await startMicrosocks({ host: '127.0.0.164' });
    t.after(() => relay.close());
    // The hop records its logins: proof the control connection went through it.
    const hop = await startRecordingSocks('127.0.0.163', relay);
    t.after(() => hop.close());
    const dante = await startDante({ host: '127.0.0.165' });
    t.after(() => dante.close());
    const gw = await startGateway({
      upstreams: {
        hop: { type: 'socks5', host: hop.host, port: hop.port, username: 'hop-user', password: 'hop-pw' },
        dante: { type, host: dante.host, port: dante.port, via: 'hop' },
      },
      rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
    });
    t.after(() => gw.close());
    await bindThrough(t, gw.port, '127.0.0.165');
    assert.deepEqual(hop.logins.map((l) => l.username), ['hop-user'], 'the control connection went through the hop');
  });
}

/** RFC 1928 §4 / SOCKS4 BIND replies naming the wildcard address: "where you reached me". */
const WILDCARD = {
  socks5: { first: Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0x1f, 0x90]), second: Buffer.from([5, 0, 0, 1, 0, 0, 0, 0, 0x30, 0x39]) },
  socks4: { first: Buffer.from([0, 0x5a, 0x1f, 0x90, 0, 0, 0, 0]), second: Buffer.from([0, 0x5a, 0x30, 0x39, 0, 0, 0, 0]) },
} as const;

const WILDCARD_CASES = [
  { type: 'socks5', chained: false, named: false },
  { type: 'socks5', chained: true, named: false },
  { type: 'socks4', chained: true, named: false },
  { type: 'socks5', chained: true, named: true },
] as const;

for (const { type, chained, named } of WILDCARD_CASES) {
  const how = chained ? `through a chain to a ${type} upstream${named ? ' configured by name' : ''}` : `through a ${type} upstream`;
  test(`BIND ${how} that answers 0.0.0.0: both replies name that upstream${chained ? ', not the first hop' : ''}`, async (t) => {
    const last = await startScriptedSocks(WILDCARD[type].first, '127.0.0.167', type === 'socks5' ? 5 : 4);
    t.after(() => last.close());
    const hop = await startMicrosocks({ host: '127.0.0.166' });
    t.after(() => hop.close());
    const lastHost = named ? 'last-hop.test' : last.host;
    const gw = await startGateway({
      upstreams: {
        // remote_dns false: the gateway resolves the last hop's name (dns.hosts) for the first hop.
        hop: { type: 'socks5', host: hop.host, port: hop.port, remote_dns: false },
        last: { type, host: lastHost, port: last.port, ...(chained ? { via: 'hop' } : {}) },
      },
      rules: [{ name: 'bind-out', commands: ['bind'], action: 'last' }],
      dns: { hosts: { 'last-hop.test': last.host } },
    });
    t.after(() => gw.close());
    const { s } = await rawBind(gw.port);
    t.after(() => s.destroy());
    assert.deepEqual(await readReply(s), { rep: 0, bound: { host: '127.0.0.167', port: 8080 } });
    (await last.accepted).write(WILDCARD[type].second);
    assert.deepEqual(await readReply(s), { rep: 0, bound: { host: '127.0.0.167', port: 12345 } });
  });
}

test('BIND through a chain to an upstream whose name has both families: a 0.0.0.0 BND names its IPv4 address, though IPv6 is preferred', async (t) => {
  // Listening on both families: the first hop reaches it on ::1, as the preferred family says.
  const last = await startScriptedSocks(WILDCARD.socks5.first, '::');
  t.after(() => last.close());
  const hop = await startMicrosocks({ host: '127.0.0.166' });
  t.after(() => hop.close());
  const names = await startDnsServer({ 'dual-hop.test': { A: ['127.0.0.167'], AAAA: ['::1'] } });
  t.after(() => names.close());
  const gw = await startGateway({
    upstreams: {
      hop: { type: 'socks5', host: hop.host, port: hop.port, remote_dns: false },
      last: { type: 'socks5', host: 'dual-hop.test', port: last.port, via: 'hop' },
    },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'last' }],
    dns: { servers: [`${names.host}:${names.port}`], prefer: 'ipv6' },
  });
  t.after(() => gw.close());
  const { s } = await rawBind(gw.port);
  t.after(() => s.destroy());
  // An IPv4 wildcard listens on IPv4: ::1 would name a socket nobody listens on.
  assert.deepEqual(await readReply(s), { rep: 0, bound: { host: '127.0.0.167', port: 8080 } });
  assert.equal((await last.accepted).remoteAddress, '::1', 'the chain reached the upstream over IPv6');
});

test('BIND through a pool: the access-log line names the member that carried it, or the one that refused it', async (t) => {
  const dante = await startDante({ host: '127.0.0.9' });
  t.after(() => dante.close());
  const refusing = await startMicrosocks({ host: '127.0.0.10' });
  t.after(() => refusing.close());
  const carrier = `socks5://${dante.host}:${dante.port}`;
  const refuser = `socks5://${refusing.host}:${refusing.port}`;
  const gw = await startGateway({
    upstreams: {
      carry: { type: 'pool', members: [carrier] },
      refuse: { type: 'pool', members: [refuser] },
    },
    // The BIND's DST (the peer it expects) picks the pool.
    rules: [
      { name: 'carry', commands: ['bind'], cidrs: ['127.0.0.1/32'], action: 'carry' },
      { name: 'refuse', commands: ['bind'], cidrs: ['127.0.0.2/32'], action: 'refuse' },
    ],
  });
  t.after(() => gw.close());

  const ok = await rawBind(gw.port, { host: '127.0.0.1', port: 0 });
  t.after(() => ok.s.destroy());
  assert.equal((await readReply(ok.s))?.rep, 0);
  ok.s.destroy();
  const carried = await gw.accessLog((l) => l.cmd === 'bind' && l.rule === 'carry');
  assert.equal(carried?.member, carrier);

  const no = await rawBind(gw.port, { host: '127.0.0.2', port: 0 });
  t.after(() => no.s.destroy());
  assert.equal((await readReply(no.s))?.rep, 7, 'microsocks does not BIND');
  const refused = await gw.accessLog((l) => l.cmd === 'bind' && l.rule === 'refuse');
  assert.equal(refused?.rep, 7);
  assert.equal(refused?.member, refuser);
});

for (const { how, first } of [
  { how: 'granted then left by the client', first: WILDCARD.socks5.first },
  { how: 'refused by the upstream', first: Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]) },
]) {
  test(`BIND through a chain whose hop is a pool, ${how}: the hop's connection stops counting as open`, async (t) => {
    const last = await startScriptedSocks(first, '127.0.0.167');
    t.after(() => last.close());
    const hop = await startMicrosocks({ host: '127.0.0.166' });
    t.after(() => hop.close());
    const gw = await startGateway({
      upstreams: {
        hop: { type: 'socks5', host: hop.host, port: hop.port },
        hops: { type: 'pool', members: ['hop'] },
        last: { type: 'socks5', host: last.host, port: last.port, via: 'hops' },
      },
      rules: [{ name: 'bind-out', commands: ['bind'], action: 'last' }],
    });
    t.after(() => gw.close());
    const { s } = await rawBind(gw.port);
    t.after(() => s.destroy());
    assert.equal((await readReply(s))?.rep, first[1]);
    s.destroy();
    assert.ok(await gw.accessLog((l) => l.cmd === 'bind'));
    const outbounds = gw.gw.snapshot.outbounds;
    const upstream = outbounds.get('hop')!;
    const pool = outbounds.get('hops')!;
    assert.ok(isUpstreamOutbound(upstream) && isPoolOutbound(pool));
    // The control connection closes with the session; its close is what lets the hop go.
    for (let waited = 0; waited < 2_000 && upstream.stats().active > 0; waited += 20) await new Promise((r) => setTimeout(r, 20));
    assert.equal(upstream.stats().active, 0, 'the hop upstream');
    assert.equal(pool.stats()[0]!.active, 0, 'the pool member');
  });
}

test('BIND for a name through a socks4 upstream with remote_dns false: a client that resets while the lookup waits on a silent DNS server is let go and logged at once, not at the DNS timeout', async (t) => {
  const dante = await startDante({ host: '127.0.0.168' });
  t.after(() => dante.close());
  const names = await startDnsServer({ 'peer.test': { silent: true } });
  t.after(() => names.close());
  const gw = await startGateway({
    upstreams: { four: { type: 'socks4', host: dante.host, port: dante.port, remote_dns: false } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'four' }],
    // connect_timeout out of the way: only the client leaving can end the wait before the resolver does.
    dns: { servers: [`${names.host}:${names.port}`], timeout: '30s' },
    limits: { connect_timeout: '30s' },
  });
  t.after(() => gw.close());
  assert.ok((await resetDuringBindLookup(t, gw.port, names, 'peer.test')) > 0, 'the gateway looked the name up itself');
  // The resolver gives up after about 5 s (c-ares caps a query's wait there): well past this.
  const line = await gw.accessLog((l) => l['cmd'] === 'bind', 2_000);
  assert.ok(line, 'the session ended within 2 s of the reset, before the lookup did');
  // The client left: not failed by the resolver, nor by the upstream.
  assert.equal(line['error'], 'client closed the connection', JSON.stringify(line));
});
