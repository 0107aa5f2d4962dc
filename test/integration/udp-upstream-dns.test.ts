// UDP ASSOCIATE through a SOCKS5 upstream (a real Dante) to a destination by name:
// `remote_dns` says who resolves it, the gateway (false) or the upstream (true).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { startDnsServer } from '../helpers/dns-server.js';
import { udpAssociation, udpLogLine } from '../helpers/udp.js';
import { startDante } from '../helpers/upstreams.js';

/** Gateway config sending UDP through the Dante at `dante`. */
const udpThrough = (dante: { host: string; port: number }, remoteDns: boolean, dns: Record<string, unknown>) => ({
  upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port, remote_dns: remoteDns } },
  rules: [{ name: 'udp-out', commands: ['udp'], action: 'dante' }],
  dns,
});

test('remote_dns false: datagrams to a name only the gateway knows (dns.hosts) go through Dante to the echo server and come back', async (t) => {
  const dante = await startDante({ host: '127.0.0.73' });
  t.after(() => dante.close());
  // Dante cannot resolve it (.test is reserved, RFC 6761): sent the name, it drops the datagram.
  const { echo, gw, c } = await udpAssociation(t, udpThrough(dante, false, { hosts: { 'echo.test': '127.0.0.1' } }));
  for (let i = 0; i < 3; i++) {
    c.send({ host: 'echo.test', port: echo.port }, `named${i}`);
    const a = await c.receive(3_000);
    assert.equal(a?.data.toString(), `named${i}`);
    // The source as the upstream names it: the address the name was sent to.
    assert.deepEqual([a?.host, a?.port], ['127.0.0.1', echo.port]);
  }
  assert.equal(echo.peers.length, 3);
  for (const p of echo.peers) assert.match(p, /^127\.0\.0\.73:/, 'sent from Dante');
  await c.close();
  const line = await udpLogLine(gw);
  assert.equal(line?.['outbound'], 'dante');
  assert.deepEqual((line?.['udp'] as { dropped?: unknown } | undefined)?.dropped, {});
});

test("remote_dns true: a datagram's name goes to Dante, which resolves it; the gateway looks nothing up", async (t) => {
  // Every name is NXDOMAIN here: had the gateway resolved one, its datagram would be dropped.
  const names = await startDnsServer({});
  t.after(() => names.close());
  const dante = await startDante({ host: '127.0.0.74' });
  t.after(() => dante.close());
  const { echo, c } = await udpAssociation(
    t,
    udpThrough(dante, true, { servers: [`${names.host}:${names.port}`], hosts: { 'echo.test': '127.0.0.1' } }),
  );
  // `localhost`: Dante resolves it itself (/etc/hosts).
  c.send({ host: 'localhost', port: echo.port }, 'by name');
  assert.equal((await c.receive(3_000))?.data.toString(), 'by name');
  assert.match(echo.peers[0] ?? '', /^127\.0\.0\.74:/, 'sent from Dante');
  assert.equal(names.queries('localhost'), 0, "the gateway did not ask its name server");
  // A name only the gateway knows goes to Dante as a name too, which cannot resolve it.
  c.send({ host: 'echo.test', port: echo.port }, 'gateway only');
  assert.equal(await c.receive(1_000), undefined);
  assert.equal(echo.peers.length, 1);
});
