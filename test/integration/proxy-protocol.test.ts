// PROXY protocol on a listener, over real sockets: the load balancer is played by a client
// socket bound to 127.0.0.1 (trusted) or 127.0.0.2 (not trusted), writing the header itself.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, type Socket } from 'node:net';
import { SocksClient } from 'socks';
import { encodeProxyV1, encodeProxyV2 } from '../../src/protocol/proxy-protocol.js';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import { closedWithin, readBytes, startEchoServer, startGateway, startHttpServer, waitForLogMessage, type TestGateway } from '../helpers/index.js';
import { closeDgram, startUdpEchoServer } from '../helpers/udp.js';

const TRUSTED = '127.0.0.1';
const UNTRUSTED = '127.0.0.2';

/** A gateway whose only `direct` route is for clients in 198.51.100.0/24 or 2001:db8::/32. */
async function gateway(t: TestContext, limits: Record<string, unknown> = {}): Promise<TestGateway> {
  const gw = await startGateway({
    listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: [`${TRUSTED}/32`] } }],
    rules: [
      { name: 'behind-lb', sources: ['198.51.100.0/24', '2001:db8::/32'], action: 'direct' },
      { name: 'lb-itself', sources: [`${TRUSTED}/32`, `${UNTRUSTED}/32`], action: 'direct' },
    ],
    default: 'block',
    limits,
  });
  t.after(() => gw.close());
  return gw;
}

async function from(localAddress: string, port: number, t: TestContext, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ host, port, localAddress, allowHalfOpen: true });
  t.after(() => s.destroy());
  await once(s, 'connect');
  return s;
}

/** SOCKS5 CONNECT over a socket that already carries a header, with `socks` as the client. */
async function socksOver(s: Socket, destPort: number): Promise<Socket> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: 0, type: 5 },
    command: 'connect',
    destination: { host: '127.0.0.1', port: destPort },
    existing_socket: s,
    timeout: 3_000,
  });
  return socket;
}

async function echoes(s: Socket, text: string): Promise<void> {
  s.write(text);
  const got = await readBytes(s, text.length);
  assert.equal(got.toString(), text);
}

test('a v1 header from a trusted peer: its client is the source for rules and the access log', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  s.write(encodeProxyV1({ family: 'inet', source: { host: '198.51.100.9', port: 40000 }, dest: { host: '203.0.113.1', port: 1080 } }));
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'through the balancer');
  tunnel.end();
  const line = await gw.accessLog((l) => l.client === '198.51.100.9:40000');
  assert.equal(line?.rule, 'behind-lb');
  assert.equal(line?.rep, 0);
  assert.deepEqual(echo.peers, ['127.0.0.1']); // the gateway dialed, not the claimed client
});

test('a v2 header (IPv6 client, TLVs), the header, greeting, request and payload in one packet', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  const header = encodeProxyV2(
    { command: 'proxy', family: 'inet6', source: { host: '2001:db8::7', port: 5555 }, dest: { host: '2001:db8::1', port: 1080 } },
    Buffer.from('ea000501767063650400020000', 'hex'), // AWS VPC endpoint TLV, then a NOOP
  );
  const request = Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]);
  s.write(Buffer.concat([header, request, Buffer.from('early')]));
  const replies = await readBytes(s, 2 + 10 + 5);
  assert.deepEqual([...replies.subarray(0, 4)], [5, 0, 5, 0]);
  assert.equal(replies.subarray(12).toString(), 'early');
  s.end();
  const line = await gw.accessLog((l) => l.client === '[2001:db8::7]:5555');
  assert.equal(line?.rule, 'behind-lb');
  assert.equal(line?.up, 5);
});

test('a v2 LOCAL header (the balancer checking health) leaves the peer as the client', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  s.write(encodeProxyV2({ command: 'local' }));
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'local');
  tunnel.end();
  const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${TRUSTED}:`));
  assert.equal(line?.rule, 'lb-itself');
});

for (const [version, header] of [
  ['v1', encodeProxyV1({ family: 'inet', source: { host: '198.51.100.9', port: 40000 }, dest: { host: '127.0.0.1', port: 1080 } })],
  ['v2', encodeProxyV2({ command: 'proxy', family: 'inet', source: { host: '198.51.100.9', port: 40000 }, dest: { host: '127.0.0.1', port: 1080 } })],
] as const) {
  test(`a ${version} header from an untrusted peer closes the connection`, async (t) => {
    const gw = await gateway(t);
    const s = await from(UNTRUSTED, gw.port, t);
    s.write(Buffer.concat([header, Buffer.from([5, 1, 0])]));
    assert.equal((await readBytes(s, 2)).length, 0, 'no SOCKS answer');
    assert.ok(await closedWithin(s));
    const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${UNTRUSTED}:`));
    assert.equal(line?.error, `PROXY header from untrusted peer ${UNTRUSTED}`);
    assert.equal(line?.rule, undefined);
  });
}

test('an untrusted peer without a header is served as itself', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const s = await from(UNTRUSTED, gw.port, t);
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'direct client');
  tunnel.end();
  const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${UNTRUSTED}:`));
  assert.equal(line?.rule, 'lb-itself');
});

test('a trusted peer that sends no header is closed (a balancer set up for it always sends one)', async (t) => {
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  s.write(Buffer.from([5, 1, 0]));
  assert.equal((await readBytes(s, 2)).length, 0, 'no SOCKS answer');
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${TRUSTED}:`));
  assert.equal(line?.error, 'PROXY header: none sent');
});

// What HAProxy's `check-send-proxy` does: connect, send a v2 LOCAL header, reset (SO_LINGER 0).
const CHECK_AND_RESET = `
import socket, struct, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])), source_address=(sys.argv[2], 0))
s.sendall(bytes.fromhex(sys.argv[3]))
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
s.close()
`;

test("a balancer's check that sends its header and resets is logged as reset, not as an untrusted peer", async (t) => {
  const gw = await gateway(t);
  // Run synchronously, so the connection is gone before this process (the gateway's) accepts
  // it, as it is for a check sent to a busy gateway: the peer's address can no longer be read.
  const check = spawnSync('/usr/bin/python3', ['-c', CHECK_AND_RESET, String(gw.port), TRUSTED, encodeProxyV2({ command: 'local' }).toString('hex')], { timeout: 10_000 });
  assert.equal(check.status, 0, String(check.stderr));
  const line = await gw.accessLog((l) => typeof l.error === 'string');
  assert.equal(line?.error, 'reset before its PROXY header was read');
  // Its address is unknown: no `client` field, as any field without a value (not ":0").
  assert.equal(line?.client, undefined);
});

test('a header that never completes is closed at handshake_timeout', async (t) => {
  const gw = await gateway(t, { handshake_timeout: '300ms' });
  const s = await from(TRUSTED, gw.port, t);
  s.write('PROXY TCP4 198.51.100.9 ');
  assert.ok(await closedWithin(s, 5_000));
  const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${TRUSTED}:`));
  assert.equal(line?.error, 'handshake timeout');
});

test('a header still trickling in at handshake_timeout is cut there, as a greeting is, not read on for two more seconds', async (t) => {
  const gw = await gateway(t, { handshake_timeout: '300ms' });
  const s = await from(TRUSTED, gw.port, t);
  s.setNoDelay(true);
  // Each byte restarts the socket's idle timer, so only the deadline itself can end this.
  let closedSide = false; // the gateway has closed its side (FIN or reset)
  let cut = false; // the connection is gone
  s.on('end', () => (closedSide = true));
  s.on('error', () => (closedSide = cut = true));
  s.on('close', () => (closedSide = cut = true));
  s.resume();
  let afterClose = 0;
  const bytes = Buffer.from(`PROXY UNKNOWN ${'x'.repeat(200)}`, 'latin1');
  for (const byte of bytes) {
    if (cut) break;
    if (closedSide) afterClose++;
    s.write(Buffer.from([byte]));
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(cut, 'the connection is gone');
  // A refusal's linger (2 s) would have taken ~100 more bytes, read and dropped.
  assert.ok(afterClose < 20, `${afterClose} bytes written after the gateway closed`);
  const line = await gw.accessLog((l) => typeof l.client === 'string' && l.client.startsWith(`${TRUSTED}:`));
  assert.equal(line?.error, 'handshake timeout');
});

test('a header sent a byte at a time is read whole', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  s.setNoDelay(true);
  const header = encodeProxyV1({ family: 'inet', source: { host: '198.51.100.20', port: 1 }, dest: { host: '127.0.0.1', port: 1080 } });
  for (const byte of header) {
    s.write(Buffer.from([byte]));
    await new Promise((r) => setTimeout(r, 2));
  }
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'slow header');
  tunnel.end();
  assert.equal((await gw.accessLog((l) => l.client === '198.51.100.20:1'))?.rule, 'behind-lb');
});

test('a header followed by the end of the stream ends the session at once, not at handshake_timeout', async (t) => {
  const gw = await gateway(t, { handshake_timeout: '30s' });
  const s = await from(TRUSTED, gw.port, t);
  s.end(encodeProxyV1({ family: 'inet', source: { host: '198.51.100.30', port: 2 }, dest: { host: '127.0.0.1', port: 1080 } }));
  assert.ok(await closedWithin(s, 5_000));
  const line = await gw.accessLog((l) => l.client === '198.51.100.30:2', 5_000);
  assert.equal(line?.error, 'closed before greeting');
});

test('an IPv6 listener trusting ::1 takes a v2 header with an IPv4 client', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    listen: [{ host: '::1', port: 0, proxy_protocol: { trusted: ['::1'] } }],
    rules: [{ name: 'behind-lb', sources: ['198.51.100.0/24'], action: 'direct' }],
    default: 'block',
  });
  t.after(() => gw.close());
  const s = await from('::1', gw.port, t, '::1');
  s.write(encodeProxyV2({ command: 'proxy', family: 'inet', source: { host: '198.51.100.40', port: 4040 }, dest: { host: '192.0.2.1', port: 1080 } }));
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'over ipv6');
  tunnel.end();
  assert.equal((await gw.accessLog((l) => l.client === '198.51.100.40:4040'))?.rule, 'behind-lb');
});

test('an HTTP proxy request behind a v1 header is routed and logged as the header\'s client', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const gw = await gateway(t);
  const s = await from(TRUSTED, gw.port, t);
  const header = encodeProxyV1({ family: 'inet', source: { host: '198.51.100.50', port: 5050 }, dest: { host: '127.0.0.1', port: 1080 } });
  s.write(Buffer.concat([header, Buffer.from(`GET ${web.url}/via-lb HTTP/1.1\r\nHost: 127.0.0.1:${web.port}\r\nConnection: close\r\n\r\n`)]));
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  assert.ok(await closedWithin(s, 5_000));
  const answer = Buffer.concat(chunks).toString();
  assert.match(answer, /^HTTP\/1\.1 200/);
  assert.match(answer, /hello \/via-lb/);
  const line = await gw.accessLog((l) => l.client === '198.51.100.50:5050');
  assert.equal(line?.rule, 'behind-lb');
  assert.equal(line?.protocol, 'http');
});

test("UDP ASSOCIATE behind a trusted balancer: datagrams from the client the header names are relayed, the balancer's own are not", async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: [`${TRUSTED}/32`] } }] });
  t.after(() => gw.close());
  // The client's datagrams come from its own address (UDP does not pass the balancer).
  const client = createSocket('udp4');
  t.after(() => closeDgram(client));
  client.bind(0, '127.0.0.3');
  await once(client, 'listening');
  const clientPort = client.address().port;

  const s = await from(TRUSTED, gw.port, t);
  s.write(encodeProxyV1({ family: 'inet', source: { host: '127.0.0.3', port: 40000 }, dest: { host: '127.0.0.1', port: gw.port } }));
  // ASSOCIATE over the socket that carried the header (createConnection takes CONNECT only).
  const associating = new SocksClient({ proxy: { host: '127.0.0.1', port: 0, type: 5 }, command: 'associate', destination: { host: '0.0.0.0', port: clientPort }, timeout: 3_000 });
  const established = once(associating, 'established') as Promise<[{ remoteHost?: { host: string; port: number } }]>;
  associating.connect(s);
  const [{ remoteHost }] = await established;
  const relay = { host: remoteHost?.host ?? '', port: remoteHost?.port ?? 0 };
  assert.ok(relay.port > 0, 'a relay port in the reply');
  const answers: Buffer[] = [];
  client.on('message', (msg: Buffer) => answers.push(SocksClient.parseUDPFrame(msg).data));
  client.send(SocksClient.createUDPFrame({ remoteHost: { host: '127.0.0.1', port: echo.port }, data: Buffer.from('from the client') }), relay.port, relay.host);
  for (let waited = 0; answers.length === 0 && waited < 3_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(answers.map(String), ['from the client']);

  // The balancer's address is not the client's: its datagram is dropped (RFC 1928 §7).
  const lb = createSocket('udp4');
  t.after(() => closeDgram(lb));
  lb.bind(0, TRUSTED);
  await once(lb, 'listening');
  lb.send(SocksClient.createUDPFrame({ remoteHost: { host: '127.0.0.1', port: echo.port }, data: Buffer.from('from the balancer') }), relay.port, relay.host);
  const fromElsewhere = async (): Promise<number> => {
    const m = await gw.gw.metrics.registry.getSingleMetric('socksgate_udp_datagrams_total')?.get();
    return m?.values.find((v) => v.labels['direction'] === 'up' && v.labels['result'] === 'source')?.value ?? 0;
  };
  for (let waited = 0; (await fromElsewhere()) === 0 && waited < 3_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  s.end();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  assert.equal(line?.['client'], '127.0.0.3:40000');
  const udp = line?.['udp'] as { sent: number; received: number; dropped: Record<string, number> } | undefined;
  assert.equal(udp?.sent, 1);
  assert.equal(udp?.received, 1);
  assert.deepEqual(udp?.dropped, { source: 1 });
  assert.equal(echo.peers.length, 1, 'only the client datagram reached the destination');
});

test('a v1 TCP6 header names its client in any spelling of the address: it is that client, for the log, limits and its datagrams', async (t) => {
  const echo = await startUdpEchoServer('::1');
  t.after(() => echo.close());
  const gw = await startGateway({ listen: [{ host: '::1', port: 0, proxy_protocol: { trusted: ['::1'] } }], limits: { max_connections_per_source: 1 } });
  t.after(() => gw.close());
  const client = createSocket('udp6');
  t.after(() => closeDgram(client));
  client.bind(0, '::1');
  await once(client, 'listening');

  // ::1 written out in full, as a hand-written or non-canonical v1 line may have it.
  const s = await from('::1', gw.port, t, '::1');
  s.write(`PROXY TCP6 0:0:0:0:0:0:0:1 ::1 40000 ${gw.port}\r\n`);
  const associating = new SocksClient({ proxy: { host: '::1', port: 0, type: 5 }, command: 'associate', destination: { host: '::', port: client.address().port }, timeout: 3_000 });
  const established = once(associating, 'established') as Promise<[{ remoteHost?: { host: string; port: number } }]>;
  associating.connect(s);
  const [{ remoteHost }] = await established;
  const answers: Buffer[] = [];
  client.on('message', (msg: Buffer) => answers.push(SocksClient.parseUDPFrame(msg).data));
  client.send(SocksClient.createUDPFrame({ remoteHost: { host: '::1', port: echo.port }, data: Buffer.from('from ::1') }), remoteHost?.port ?? 0, remoteHost?.host ?? '');
  for (let waited = 0; answers.length === 0 && waited < 3_000; waited += 10) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(answers.map(String), ['from ::1'], 'the datagram from the client the header names is relayed');

  // The same client in its short form holds the same per-source share: refused while the first is open.
  const second = await from('::1', gw.port, t, '::1');
  second.write(`PROXY TCP6 ::1 ::1 40001 ${gw.port}\r\n`);
  await assert.rejects(socksOver(second, echo.port));
  s.end();
  const line = await gw.accessLog((l) => l['cmd'] === 'udp');
  assert.equal(line?.['client'], '[::1]:40000');
});

test('a reload that changes only a listener\'s trusted balancers says that is what waits for a restart, not its address', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await gateway(t);
  const next = { listen: [{ host: '127.0.0.1', port: 0, proxy_protocol: { trusted: [`${UNTRUSTED}/32`] } }], rules: [{ name: 'any', sources: ['0.0.0.0/0'], action: 'direct' }] };
  await gw.gw.reload(parseConfig(stringify(next), '/tmp/socksgate-test.yaml', {}));
  const warned = await waitForLogMessage(gw.logs, 'listener settings changed: they apply after a restart');
  assert.deepEqual(warned?.['listeners'], [`127.0.0.1:0 proxy_protocol`]);
  assert.equal(gw.logs.find((l) => l.msg === 'listen addresses changed: they apply after a restart'), undefined, 'the address did not change');
  // As the line says: the balancer trusted at start still is, until a restart.
  const s = await from(TRUSTED, gw.port, t);
  s.write(encodeProxyV1({ family: 'inet', source: { host: '198.51.100.60', port: 6060 }, dest: { host: '127.0.0.1', port: 1080 } }));
  const tunnel = await socksOver(s, echo.port);
  await echoes(tunnel, 'still trusted');
  tunnel.end();
  assert.equal((await gw.accessLog((l) => l.client === '198.51.100.60:6060'))?.rule, 'any');
});
