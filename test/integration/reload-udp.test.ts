// A reload and the UDP associations already open: a destination first sent to after the
// reload is routed, checked and resolved on the reloaded config, whatever the association
// used before it.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { MAX_DESTINATIONS } from '../../src/server/udp-associate.js';
import { once } from 'node:events';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { closedWithin, startGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { freePort } from '../helpers/upstreams.js';
import { startHeldListener } from '../helpers/instruments.js';
import { startUdpEchoServer, udpAssociation, udpLogLine, type SocksUdpClient } from '../helpers/udp.js';

function configOf(partial: Record<string, unknown>): Config {
  return parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), '/tmp/socksgate-test.yaml', {});
}

test('a reload that denies an address: a UDP association opened before it drops a new destination there as denied', async (t) => {
  // 127.0.0.2 stands in for an internal host, as in egress.test.ts.
  const internal = await startUdpEchoServer('127.0.0.2');
  t.after(() => internal.close());
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: echo.host, port: echo.port }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before', 'the direct channel is open');

  await gw.gw.reload(configOf({ egress: { deny: ['127.0.0.2/32'] } }));
  c.send({ host: internal.host, port: internal.port }, 'to-internal');
  // Same relay socket, handled in order: once this answer is back, the one before was decided.
  c.send({ host: echo.host, port: echo.port }, 'after');
  assert.equal((await c.receive())?.data.toString(), 'after');
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 2, received: 2, dropped: { denied: 1 } });
  assert.equal(line?.['up'], 'before'.length + 'after'.length, 'the denied datagram is not in up');
  assert.deepEqual(internal.peers, [], 'nothing reached the denied address');
});

test('a reload that maps a name elsewhere: a UDP association opened before it resolves the name, first sent to now, with the reloaded resolver', async (t) => {
  const fresh = await startUdpEchoServer('127.0.0.3');
  t.after(() => fresh.close());
  // Before the reload the name points where nothing listens.
  const { echo, gw, c } = await udpAssociation(t, { dns: { hosts: { 'svc.test': '127.0.0.4' } } });
  c.send({ host: echo.host, port: echo.port }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before', 'the direct channel is open');

  await gw.gw.reload(configOf({ dns: { hosts: { 'svc.test': fresh.host } } }));
  c.send({ host: 'svc.test', port: fresh.port }, 'by-name');
  const answer = await c.receive();
  assert.deepEqual([answer?.host, answer?.port, answer?.data.toString()], [fresh.host, fresh.port, 'by-name']);
});

/** Gateway config: UDP to `far`'s port through the socks5 upstream `up`, 10.255.0.0/16 blocked, the rest direct. */
function throughUpstream(up: { host: string; port: number }, far: { port: number }): Record<string, unknown> {
  return {
    upstreams: { up: { type: 'socks5', host: up.host, port: up.port } },
    rules: [
      { name: 'filler', cidrs: ['10.255.0.0/16'], action: 'block' },
      { name: 'via-up', ports: [far.port], commands: ['udp'], action: 'up' },
    ],
  };
}

/**
 * Sends to as many new (blocked) destinations as an association remembers, so that every one
 * it had is forgotten. Blocked ones send nothing; a direct echo after each batch keeps the
 * relay socket's buffer from overflowing (once it is answered, the batch before it was handled).
 */
async function crowdOut(c: SocksUdpClient, echo: { host: string; port: number }, from = 0): Promise<void> {
  const batch = 64;
  for (let i = from; i < from + MAX_DESTINATIONS; i += batch) {
    for (let j = i; j < i + batch; j++) c.send({ host: `10.255.${(j >> 8) & 0xff}.${j & 0xff}`, port: 9 }, 'filler');
    c.send({ host: echo.host, port: echo.port }, `ping ${i}`);
    assert.equal((await c.receive())?.data.toString(), `ping ${i}`);
  }
}

/**
 * An association whose datagrams to `far` go through the socks5 upstream `up` (a second
 * gateway: its access log has a line when an association through it ends), with one
 * datagram through it answered: the channel is open.
 */
async function throughOpenChannel(t: TestContext) {
  const up = await startGateway();
  t.after(() => up.close());
  const far = await startUdpEchoServer();
  t.after(() => far.close());
  const config = throughUpstream(up, far);
  const association = await udpAssociation(t, config);
  association.c.send({ host: far.host, port: far.port }, 'via-up');
  assert.equal((await association.c.receive())?.data.toString(), 'via-up', 'a channel through the upstream is open');
  return { ...association, up, far, config };
}

test('after a reload, a UDP channel through an upstream closes once no remembered destination uses it', async (t) => {
  const { echo, gw, c, up, far, config } = await throughOpenChannel(t);

  await gw.gw.reload(configOf(config));
  await crowdOut(c, echo);
  const ended = await up.accessLog((l) => l['cmd'] === 'udp');
  assert.ok(ended, 'the association through the upstream ended while the client\'s goes on');
  assert.equal(c.control.destroyed, false);
  // The destination comes back: routed on the live config, through a channel of its own.
  c.send({ host: far.host, port: far.port }, 'again');
  assert.equal((await c.receive())?.data.toString(), 'again');
});

test('a UDP channel of the live config stays open without destinations; after a reload, the next new destination closes it', async (t) => {
  const { echo, gw, c, up, far, config } = await throughOpenChannel(t);
  await crowdOut(c, echo);
  // Forgotten, but the config that opened it is still live: the same channel carries it again.
  c.send({ host: far.host, port: far.port }, 'again');
  assert.equal((await c.receive())?.data.toString(), 'again');
  assert.equal(far.peers.length, 2);
  assert.equal(far.peers[1], far.peers[0], 'the same upstream association carried both');
  await crowdOut(c, echo, MAX_DESTINATIONS);

  await gw.gw.reload(configOf(config));
  c.send({ host: '10.255.255.255', port: 9 }, 'new after the reload');
  const ended = await up.accessLog((l) => l['cmd'] === 'udp');
  assert.ok(ended, 'the association through the upstream ended');
  assert.equal(c.control.destroyed, false);
});

test('a channel of a replaced config whose only destination was forgotten while it opened closes once open', async (t) => {
  // The upstream answers the ASSOCIATE only when the test says: the channel is still opening
  // when the reload comes and the destination that asked for it is crowded out.
  const up = await startHeldListener();
  t.after(() => up.close());
  const far = await startUdpEchoServer();
  t.after(() => far.close());
  const config = throughUpstream(up, far);
  const { echo, gw, c } = await udpAssociation(t, config);
  c.send({ host: far.host, port: far.port }, 'via-up');
  await up.accepting(1);
  const control = up.accepted[0]!;
  control.pause();
  await once(control, 'readable');
  control.read(); // the greeting
  control.write(Buffer.from([5, 0]));

  await gw.gw.reload(configOf(config));
  await crowdOut(c, echo);
  control.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, far.port >> 8, far.port & 0xff]));
  assert.ok(await closedWithin(control, 5_000), 'the association through the upstream was left open, used by nothing');
  assert.equal(c.control.destroyed, false);
});

test('a channel of a replaced config that failed to open is let go at the next new destination: the association keeps no replaced outbound', async (t) => {
  // gc() for this test alone: whether the replaced outbound can be collected is the point.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const far = await startUdpEchoServer();
  t.after(() => far.close());
  // Nothing listens at the upstream's port: every channel through it fails to open.
  const config = throughUpstream({ host: '127.0.0.1', port: await freePort('127.0.0.1') }, far);
  const { echo, gw, c } = await udpAssociation(t, config);
  // The association's own snapshot stays reachable through it; the one in between must not.
  await gw.gw.reload(configOf(config));
  const between = new WeakRef(gw.gw.snapshot.outbounds.get('up')!);
  c.send({ host: far.host, port: far.port }, 'via-up');
  const failed = (): Promise<number> => metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'upstream_failed' });
  for (let i = 0; i < 250 && !((await failed()) >= 1); i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await failed(), 1, 'the channel through the missing upstream did not fail');

  await gw.gw.reload(configOf(config));
  c.send({ host: echo.host, port: echo.port }, 'new destination');
  assert.equal((await c.receive())?.data.toString(), 'new destination');
  for (let i = 0; i < 3 && between.deref(); i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(between.deref(), undefined, 'the association still holds the outbound of a replaced config');
});

test('after reloads, a channel of a replaced config whose destinations have been quiet for udp_idle_timeout closes; one still in use is kept', async (t) => {
  const up = await startGateway();
  t.after(() => up.close());
  const far = await startUdpEchoServer();
  t.after(() => far.close());
  const config = { ...throughUpstream(up, far), limits: { udp_idle_timeout: '1s' } };
  const { echo, gw, c } = await udpAssociation(t, config);
  c.send({ host: far.host, port: far.port }, 'via-up');
  assert.equal((await c.receive())?.data.toString(), 'via-up', 'a channel through the upstream is open');

  // A reload and a new destination right after: the flow to `far` is under way and keeps its route.
  await gw.gw.reload(configOf(config));
  c.send({ host: echo.host, port: echo.port }, 'new 1');
  assert.equal((await c.receive())?.data.toString(), 'new 1');
  c.send({ host: far.host, port: far.port }, 'still');
  assert.equal((await c.receive())?.data.toString(), 'still');
  assert.equal(far.peers[1], far.peers[0], 'the flow under way kept its upstream association');

  // `far` goes quiet for longer than udp_idle_timeout while the association stays busy elsewhere.
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 250));
    c.send({ host: echo.host, port: echo.port }, `busy ${i}`);
    assert.equal((await c.receive())?.data.toString(), `busy ${i}`);
  }
  await gw.gw.reload(configOf(config));
  c.send({ host: '10.255.0.1', port: 9 }, 'new 2');
  // The association stays busy meanwhile: its own idle end would close every channel anyway.
  let ended = false;
  for (let i = 0; i < 20 && !ended; i++) {
    c.send({ host: echo.host, port: echo.port }, `wait ${i}`);
    assert.equal((await c.receive())?.data.toString(), `wait ${i}`);
    ended = (await up.accessLog((l) => l['cmd'] === 'udp', 100)) !== undefined;
  }
  assert.ok(ended, 'the upstream association of a quiet destination stayed open after the reload');
  assert.equal(c.control.destroyed, false);
  c.send({ host: far.host, port: far.port }, 'again');
  assert.equal((await c.receive())?.data.toString(), 'again', 'the destination is routed again on the live config');
});
