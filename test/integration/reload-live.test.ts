// Gateway.reload with live state: what a running gateway has learnt (member health, the DNS
// cache) and what it has open (UDP associations, BIND sessions) outlives the swap.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { connect, createServer } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { socksBind } from '../helpers/bind.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { closedPort, socks5Rep, socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { countersDown, metricValue } from '../helpers/metrics.js';
import { listenTracked } from '../helpers/servers.js';
import { startUdpEchoServer, udpAssociation, udpLogLine } from '../helpers/udp.js';
import { readAll, startDestination, startMicrosocks } from '../helpers/upstreams.js';

/** A rule the reloaded config adds, so each test can see the reload took effect. */
const NEW_RULE = { name: 'added-by-reload', domains: ['full:blocked.test'], action: 'block' };

function configOf(partial: Record<string, unknown>): Config {
  return parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), '/tmp/socksgate-test.yaml', {});
}

/** Reloads with `partial` plus NEW_RULE, and checks the gateway now applies the rule. */
async function reloadAndConfirm(gw: Awaited<ReturnType<typeof startGateway>>, partial: Record<string, unknown>): Promise<void> {
  const rules = (partial.rules as unknown[] | undefined) ?? [];
  await gw.gw.reload(configOf({ ...partial, rules: [NEW_RULE, ...rules] }));
  assert.equal(await socks5Rep(gw.port, { host: 'blocked.test', port: 80 }), 0x02, 'the reloaded config is live');
}

test('an ejected pool member stays ejected across a reload', async (t) => {
  let deadConnections = 0;
  const dead = await listenTracked(
    createServer((s) => {
      deadConnections++;
      s.destroy(); // a member that fails every handshake
    }),
  );
  t.after(() => dead.close());
  const live = await startMicrosocks({ host: '127.0.0.61' });
  t.after(() => live.close());
  const dest = await startDestination();
  t.after(() => dest.close());
  const config = {
    upstreams: {
      crawl: {
        type: 'pool',
        strategy: 'round-robin',
        ban_after: 1,
        max_attempts: 2,
        members: [`socks5://127.0.0.1:${dead.port}`, `socks5://${live.host}:${live.port}`],
      },
    },
    default: 'crawl',
  };
  const gw = await startGateway(config);
  t.after(() => gw.close());
  const fetch = async (): Promise<string> => readAll((await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 5_000)).socket);
  for (let i = 0; i < 3 && deadConnections === 0; i++) assert.equal(await fetch(), 'hello 127.0.0.61\n', `request ${i}`);
  assert.equal(deadConnections, 1, 'one failure ejected the dead member (ban_after 1)');

  await reloadAndConfirm(gw, config);
  // A pool that forgot would start its round at the dead member again. Two requests: its
  // first backoff (5 s) must not run out meanwhile, even on a loaded machine.
  for (let i = 0; i < 2; i++) assert.equal(await fetch(), 'hello 127.0.0.61\n', `after reload ${i}`);
  assert.equal(deadConnections, 1, 'the reloaded pool did not try the ejected member');
});

test('the DNS cache survives a reload that keeps the dns section: the server is asked once', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dns = await startDnsServer({ 'web.test': { A: ['127.0.0.1'], ttl: 300 } });
  t.after(() => dns.close());
  const config = { dns: { servers: [`${dns.host}:${dns.port}`], timeout: '1s' } };
  const gw = await startGateway(config);
  t.after(() => gw.close());
  const roundTrip = async (text: string): Promise<string> => {
    const { socket } = await socksConnect(gw.port, { host: 'web.test', port: echo.port }, 5_000);
    socket.end(text);
    return readAll(socket);
  };
  assert.equal(await roundTrip('first'), 'first');
  const asked = dns.queries('web.test');
  assert.ok(asked > 0, 'the first lookup went to the test DNS server');

  await reloadAndConfirm(gw, config);
  assert.equal(await roundTrip('second'), 'second');
  assert.equal(dns.queries('web.test'), asked, 'the lookup after the reload was a cache hit');
});

test('upstream counters carry across a reload that leaves the upstream unchanged; one whose host or port changes starts again', async (t) => {
  const first = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => first.close());
  const second = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => second.close());
  const dest = await startDestination();
  t.after(() => dest.close());
  const other = await startDestination();
  t.after(() => other.close());
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const deadPort = await closedPort();
  const configFor = (port: number): Record<string, unknown> => ({
    upstreams: {
      up: { type: 'socks5', host: '127.0.0.1', port },
      chained: { type: 'socks5', host: '127.0.0.1', port: second.port, via: 'up' },
      dead: { type: 'socks5', host: '127.0.0.1', port: deadPort },
    },
    rules: [
      { name: 'chain', ports: [other.port], action: 'chained' },
      { name: 'nowhere', ports: [9], action: 'dead' },
    ],
    default: 'up',
  });
  const gw = await startGateway(configFor(first.port));
  t.after(() => gw.close());
  const fetch = async (port: number): Promise<string> => readAll((await socksConnect(gw.port, { host: '127.0.0.1', port }, 5_000)).socket);
  for (let i = 0; i < 3; i++) assert.equal(await fetch(dest.port), 'hello 127.0.0.1\n');
  assert.equal(await fetch(other.port), 'hello 127.0.0.1\n');
  assert.equal(await socks5Rep(gw.port, { host: '127.0.0.1', port: 9 }), 0x05, 'the dead upstream refuses');
  const attempts = (upstream: string): Promise<number> => metricValue(gw.gw, 'socksgate_upstream_attempts_total', { upstream, pool: '' });
  const failures = (upstream: string): Promise<number> => metricValue(gw.gw, 'socksgate_upstream_failures_total', { upstream, pool: '' });
  const active = (upstream: string): Promise<number> => metricValue(gw.gw, 'socksgate_upstream_active', { upstream, pool: '' });
  // A tunnel through `up` held open across the reload.
  const { socket: held } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000);
  t.after(() => held.destroy());
  // `up` is tried for `chained` too: its hop.
  assert.deepEqual([await attempts('up'), await attempts('chained'), await attempts('dead'), await failures('dead')], [5, 1, 1, 1]);
  assert.equal(await active('up'), 1);
  const before = await gw.gw.metrics.registry.metrics();

  // Only a rule is added: every upstream is the same, and so is every count.
  await reloadAndConfirm(gw, configFor(first.port));
  const after = await gw.gw.metrics.registry.metrics();
  assert.deepEqual(countersDown(before, after), [], 'no counter went down');
  assert.deepEqual([await attempts('up'), await attempts('chained'), await attempts('dead'), await failures('dead')], [5, 1, 1, 1]);
  assert.equal(await active('up'), 1, 'the tunnel opened before the reload is still open through it');
  held.write('still');
  assert.equal(String((await once(held, 'data'))[0]), 'still');
  held.destroy();
  for (let i = 0; i < 200 && (await active('up')) > 0; i++) await new Promise((r) => setTimeout(r, 25));
  assert.equal(await active('up'), 0, 'and released into the same count when it closes');
  assert.equal(await fetch(dest.port), 'hello 127.0.0.1\n');
  assert.equal(await attempts('up'), 6, 'later attempts add to the kept count');

  // `up` now names another proxy: what was counted was another proxy's, and so is the path
  // `chained` is reached by. `dead` is unchanged.
  await reloadAndConfirm(gw, configFor(second.port));
  assert.deepEqual([await attempts('up'), await attempts('chained'), await attempts('dead'), await failures('dead')], [0, 0, 1, 1]);
});

test('an open UDP association keeps relaying after a reload', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: '127.0.0.1', port: echo.port }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before');

  await reloadAndConfirm(gw, {});
  c.send({ host: '127.0.0.1', port: echo.port }, 'after');
  assert.equal((await c.receive())?.data.toString(), 'after', 'the association opened before the reload still relays');
  assert.equal(c.control.destroyed, false);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 2, received: 2, dropped: {} });
});

test('a BIND waiting for its peer across a reload still accepts it and relays', async (t) => {
  const gw = await startGateway({ limits: { bind_timeout: '10s' } });
  t.after(() => gw.close());
  const { bound, peer } = await socksBind(gw.port);

  await reloadAndConfirm(gw, { limits: { bind_timeout: '10s' } });
  const incoming = connect({ host: bound.host, port: bound.port });
  incoming.on('error', () => {});
  t.after(() => incoming.destroy());
  await once(incoming, 'connect');
  const { socket, remote } = await peer;
  t.after(() => socket.destroy());
  assert.equal(remote.port, incoming.localPort, 'the second reply names the peer');
  incoming.write('from-peer');
  const [toClient] = (await once(socket, 'data')) as [Buffer];
  assert.equal(toClient.toString(), 'from-peer');
  socket.write('from-client');
  const [toPeer] = (await once(incoming, 'data')) as [Buffer];
  assert.equal(toPeer.toString(), 'from-client');
});

/** One absolute-form GET through the gateway on `agent`'s one kept-alive socket: the status, and whether the socket was reused. */
function proxiedGet(gwPort: number, origin: number, agent: Agent, password: string): Promise<{ status: number; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port: gwPort, path: `http://127.0.0.1:${origin}/`, agent, headers: { 'proxy-authorization': `Basic ${Buffer.from(`alice:${password}`).toString('base64')}` } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, reused: req.reusedSocket }));
      },
    );
    req.setTimeout(10_000, () => req.destroy(new Error('no answer')));
    req.on('error', reject);
    req.end();
  });
}

test('a reload reaches the next request on a kept-alive HTTP connection: a revoked password is refused, a new block applies', async (t) => {
  const origin = await listenTracked(createHttpServer((_req, res) => res.end('ok')));
  t.after(() => origin.close());
  const users = (password: string): Record<string, unknown> => ({ auth: { users: [{ username: 'alice', password }] } });
  const gw = await startGateway(users('old'));
  t.after(() => gw.close());
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  assert.deepEqual(await proxiedGet(gw.port, origin.port, agent, 'old'), { status: 200, reused: false });
  await gw.gw.reload(configOf(users('new')));
  assert.deepEqual(await proxiedGet(gw.port, origin.port, agent, 'old'), { status: 407, reused: true }, 'the old password on the connection opened before the reload');
  assert.deepEqual(await proxiedGet(gw.port, origin.port, agent, 'new'), { status: 200, reused: true });
  await gw.gw.reload(configOf({ ...users('new'), rules: [{ name: 'origin-closed', ports: [origin.port], action: 'block' }] }));
  assert.deepEqual(await proxiedGet(gw.port, origin.port, agent, 'new'), { status: 403, reused: true });
});

test('a UDP association routes a new destination on the reloaded config; a flow it had keeps its route', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  const other = await startUdpEchoServer();
  t.after(() => other.close());
  c.send({ host: '127.0.0.1', port: echo.port }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before');
  await gw.gw.reload(configOf({ rules: [{ name: 'udp-closed', ports: [echo.port, other.port], commands: ['udp'], action: 'block' }] }));
  c.send({ host: '127.0.0.1', port: other.port }, 'new');
  assert.equal(await c.receive(1_000), undefined, 'a destination first sent to after the reload is blocked');
  c.send({ host: '127.0.0.1', port: echo.port }, 'again');
  assert.equal((await c.receive())?.data.toString(), 'again', 'the flow from before the reload still relays');
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 2, received: 2, dropped: { blocked: 1 } });
});

test('a reload that moves the admin listener says it applies after a restart; one that keeps it says nothing', async (t) => {
  const gw = await startGateway({ metrics: { host: '127.0.0.1', port: 0 } });
  t.after(() => gw.close());
  const warned = (): Array<Record<string, unknown>> => gw.logs.filter((l) => l.msg === 'admin listener address changed: it applies after a restart');
  await gw.gw.reload(configOf({ metrics: { host: '127.0.0.1', port: 0 } }));
  await gw.gw.reload(configOf({ metrics: { host: '127.0.0.1', port: 0 }, rules: [NEW_RULE] }));
  assert.equal(warned().length, 0);
  await gw.gw.reload(configOf({ metrics: { host: '127.0.0.1', port: 19181 } }));
  // An IPv6 host is bracketed: "::1:19182" would read as an address with no port.
  await gw.gw.reload(configOf({ metrics: { host: '::1', port: 19182 } }));
  assert.deepEqual(
    warned().map((l) => [l['level'], l['running'], l['configured']]),
    [
      [40, '127.0.0.1:0', '127.0.0.1:19181'],
      [40, '127.0.0.1:0', '[::1]:19182'],
    ],
  );
});

test('a reload lets go of the config it replaced: no snapshot keeps the one before it, no pool the one before it', async (t) => {
  // gc() for this test alone: whether the replaced objects can be collected is the point.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const member = await startMicrosocks({ host: '127.0.0.62' });
  t.after(() => member.close());
  const config = { upstreams: { crawl: { type: 'pool', members: [`socks5://${member.host}:${member.port}`] } }, rules: [{ name: 'pool', domains: ['crawl.test'], action: 'crawl' }] };
  const gw = await startGateway(config);
  t.after(() => gw.close());
  const firstSnapshot = new WeakRef(gw.gw.snapshot);
  const firstPool = new WeakRef(gw.gw.snapshot.outbounds.get('crawl')!);
  for (let i = 0; i < 3; i++) await gw.gw.reload(configOf(config));
  for (let i = 0; i < 3 && (firstSnapshot.deref() || firstPool.deref()); i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(firstSnapshot.deref(), undefined, 'the first snapshot is still reachable after three reloads');
  assert.equal(firstPool.deref(), undefined, 'the first pool is still reachable after three reloads');
});
