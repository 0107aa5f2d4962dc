// A reload and the UDP associations already open: a destination first sent to after the
// reload is routed, checked and resolved on the reloaded config, whatever the association
// used before it.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { startUdpEchoServer, udpAssociation, udpLogLine } from '../helpers/udp.js';

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
  assert.deepEqual(line?.['udp'], { sent: 3, received: 2, dropped: { denied: 1 } });
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
