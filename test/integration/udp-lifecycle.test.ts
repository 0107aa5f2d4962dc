import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { Cmd } from '../../src/protocol/constants.js';
import { decodeReply, encodeGreeting, encodeRequest, NEED_DATA } from '../../src/protocol/messages.js';
import { rawClient, readBytes, startGateway, waitForLogMessage, type TestGateway } from '../helpers/index.js';
import { rawFrame, startUdpEchoServer, udpLogLine } from '../helpers/udp.js';
import { listenTracked } from '../helpers/servers.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { metricValue } from '../helpers/metrics.js';

/** ASSOCIATE on a raw control connection; `extra` goes in the same packet as the request. */
async function rawAssociate(gw: TestGateway, extra = Buffer.alloc(0)): Promise<{ s: Socket; relayPort: number }> {
  const s = await rawClient(gw.port);
  s.on('error', () => {});
  s.write(Buffer.concat([encodeGreeting([0]), encodeRequest(Cmd.UDP_ASSOCIATE, { host: '0.0.0.0', port: 0 }), extra]));
  assert.deepEqual([...(await readBytes(s, 2))], [5, 0]);
  const r = decodeReply(await readBytes(s, 10));
  assert.ok(r !== NEED_DATA && r.value.rep === 0);
  return { s, relayPort: r.value.bound.port };
}

for (const how of ['end', 'reset'] as const) {
  test(`UDP ASSOCIATE: a control connection that ${how === 'end' ? 'is half-closed' : 'is reset'} after extra bytes ends the association`, async (t) => {
    const gw = await startGateway({ limits: { udp_idle_timeout: '20s' } });
    t.after(() => gw.close());
    const { s } = await rawAssociate(gw, Buffer.from('pipelined'));
    t.after(() => s.destroy());
    await new Promise<void>((resolve) => s.write(Buffer.alloc(256 * 1024), () => resolve()));
    if (how === 'end') s.end();
    else s.resetAndDestroy();
    assert.ok(await udpLogLine(gw, 2_000), 'the association ended without waiting for udp_idle_timeout');
    assert.equal(gw.gw.activeSessions, 0);
  });
}

/**
 * Test instrument (scripted SOCKS5 upstream): accepts no-auth and answers ASSOCIATE with `bnd`
 * (or never, when `silent`); resolves `closed` for each control connection when the gateway
 * drops it. Dante cannot be held mid-ASSOCIATE, nor tell us when our side closed.
 */
async function startAssociateUpstream(opts: { silent: boolean }): Promise<{ port: number; accepted: Promise<{ closed: Promise<void> }>; close(): Promise<void> }> {
  let onAccept!: (conn: { closed: Promise<void> }) => void;
  const accepted = new Promise<{ closed: Promise<void> }>((resolve) => (onAccept = resolve));
  const server = createServer((s) => {
    s.on('error', () => {});
    onAccept({ closed: new Promise<void>((resolve) => s.once('close', () => resolve())) });
    let step = 0;
    s.on('data', () => {
      if (opts.silent) return;
      s.write(step++ === 0 ? Buffer.from([5, 0]) : Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 9]));
    });
  });
  return { accepted, ...(await listenTracked(server)) };
}

for (const silent of [false, true]) {
  test(`UDP ASSOCIATE: the upstream's control connection closes with the client's (${silent ? 'while the upstream ASSOCIATE is pending' : 'association open'})`, async (t) => {
    const upstream = await startAssociateUpstream({ silent });
    t.after(() => upstream.close());
    const echo = await startUdpEchoServer();
    t.after(() => echo.close());
    const gw = await startGateway({
      limits: { connect_timeout: '20s' },
      upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
      rules: [{ name: 'udp-up', commands: ['udp'], action: 'up' }],
    });
    t.after(() => gw.close());
    const { s, relayPort } = await rawAssociate(gw);
    t.after(() => s.destroy());
    const d = createSocket('udp4');
    t.after(() => d.close());
    d.send(rawFrame(echo.port, 'x'), relayPort, '127.0.0.1');
    const { closed: upstreamClosed } = await upstream.accepted;
    s.end();
    assert.ok(await udpLogLine(gw, 2_000), 'the association ended');
    const closedInTime = await Promise.race([upstreamClosed.then(() => true), new Promise((r) => setTimeout(() => r(false), 2_000))]);
    assert.ok(closedInTime, 'the upstream control connection is closed');
  });
}

test('UDP ASSOCIATE: a datagram whose name is still being looked up when the association ends is counted as the access log has it', async (t) => {
  const dns = await startDnsServer({ 'slow.test': { silent: true } });
  t.after(() => dns.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '300ms' } }, { logLevel: 'debug' });
  t.after(() => gw.close());
  const { s, relayPort } = await rawAssociate(gw);
  t.after(() => s.destroy());
  const d = createSocket('udp4');
  t.after(() => d.close());
  d.send(Buffer.concat([Buffer.from([0, 0, 0, 3, 9]), Buffer.from('slow.test'), Buffer.from([echo.port >> 8, echo.port & 0xff]), Buffer.from('x')]), relayPort, '127.0.0.1');
  for (let waited = 0; waited < 3_000 && dns.queries('slow.test') === 0; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(dns.queries('slow.test') > 0, 'the lookup is under way');
  s.destroy();
  const line = await udpLogLine(gw, 2_000);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 0, dropped: {} });
  // The drop would come when the lookup fails: wait for that, not for a time it has usually failed by.
  assert.ok(await waitForLogMessage(gw.logs, 'UDP destination not resolved', (l) => l['host'] === 'slow.test'), 'the lookup failed');
  const unresolved = await metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'unresolved' });
  assert.ok(Number.isNaN(unresolved), 'no drop the access log does not have');
  assert.equal(await metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction: 'up', result: 'relayed' }), 1);
});

/**
 * The kernel's timer on the gateway's end of the TCP connection from `clientPort` to
 * `gatewayPort` on 127.0.0.1, from /proc/net/tcp: 2 while keepalive probes are due (an
 * established socket's sk_timer), 0 when no timer runs.
 */
function gatewaySideTimer(gatewayPort: number, clientPort: number): number | undefined {
  const at = (port: number): string => `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === at(gatewayPort) && f[2] === at(clientPort)) return parseInt(f[5]!.split(':')[0]!, 16);
  }
  return undefined;
}

test('UDP ASSOCIATE: the control connection has TCP keepalive, so a client that vanished (no FIN, no RST) ends its association though answers keep coming', async (t) => {
  const gw = await startGateway({ limits: { udp_idle_timeout: '20s' } });
  t.after(() => gw.close());
  const { s } = await rawAssociate(gw);
  t.after(() => s.destroy());
  // Nothing else crosses the connection: only the kernel's probes can find the client gone,
  // and answers from a destination keep the idle timer from ever firing.
  assert.equal(gatewaySideTimer(gw.port, s.localPort!), 2, 'keepalive probes due on the gateway side');
});
