// The SOCKS4/4a front with curl as the real client, BIND per the SOCKS4 spec, anonymity rules,
// and listeners restricted by listen.protocols.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import { curl } from '../helpers/curl.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { startScriptedSocks } from '../helpers/instruments.js';
import { closedWithin, rawClient, readBytes, socksConnect, startEchoServer, startGateway, startHttpServer } from '../helpers/index.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const portHex = (p: number): string => p.toString(16).padStart(4, '0');

test('curl --socks4 and --socks4a (name through the test DNS server) fetch through the gateway', async (t) => {
  const web = await startHttpServer();
  t.after(() => web.close());
  const dns = await startDnsServer({ 'web.test': { A: ['127.0.0.1'] } });
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`] } });
  t.after(() => gw.close());
  const v4 = await curl(['--socks4', `127.0.0.1:${gw.port}`, `${web.url}/four`]);
  assert.equal(v4.code, 0, v4.stderr);
  assert.match(v4.stdout, /^hello \/four from 127\.0\.0\.1/);
  const v4a = await curl(['--socks4a', `127.0.0.1:${gw.port}`, `http://web.test:${web.port}/foura`]);
  assert.equal(v4a.code, 0, v4a.stderr);
  assert.match(v4a.stdout, /^hello \/foura/);
  assert.ok(dns.queries('web.test', 'A') >= 1, 'the 4a name was resolved by the gateway');
  const line = await gw.accessLog((l) => l.protocol === 'socks4' && l.dest === `web.test:${web.port}`);
  assert.equal(line?.rep, 0);
  assert.equal(line?.cmd, 'connect');
  assert.ok(Number(line?.down) > 0);
});

test('SOCKS4 when auth is required: 0x5B and close; USERID is logged, never trusted as a user', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw' }] } });
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(hex(`04 01 ${portHex(echo.port)} 7f000001 616c69636500`)); // USERID "alice"
  assert.deepEqual(await readBytes(s, 8), hex('00 5b 0000 00000000'));
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => l.protocol === 'socks4');
  assert.equal(line?.rep, 2);
  assert.equal(line?.userid, 'alice');
  assert.equal(line?.user, undefined);
  // SOCKS5 with the password still works on the same port.
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000, { userId: 'alice', password: 'pw' });
  socket.destroy();
});

test('SOCKS4 with allow_anonymous is served next to authenticated SOCKS5', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw' }], allow_anonymous: true } });
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(Buffer.concat([hex(`04 01 ${portHex(echo.port)} 7f000001 00`), Buffer.from('early')]));
  const reply = await readBytes(s, 8);
  assert.equal(reply[1], 0x5a);
  assert.equal((await readBytes(s, 5)).toString(), 'early');
});

test('a SOCKS4 request the gateway cannot serve: 0x5B, and the access log has the reply code it stands for', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  // CD 3 is no SOCKS4 command: 0x07 (command not supported), as SOCKS5 logs it.
  const cmd = await rawClient(gw.port);
  t.after(() => cmd.destroy());
  cmd.write(hex('04 03 0050 7f000001 626f6200')); // USERID "bob"
  assert.deepEqual(await readBytes(cmd, 8), hex('00 5b 0000 00000000'));
  assert.ok(await closedWithin(cmd));
  const unknown = await gw.accessLog((l) => l.protocol === 'socks4' && l.error === 'socks4 command 3');
  assert.equal(unknown?.rep, 0x07);
  // The address fields were read: the line names what was asked for, as SOCKS5's does.
  assert.equal(unknown?.dest, '127.0.0.1:80');
  assert.equal(unknown?.userid, 'bob');
  const named = await rawClient(gw.port);
  t.after(() => named.destroy());
  named.write(Buffer.concat([hex('04 80 01bb 00000001 00'), Buffer.from('example.com\0', 'latin1')]));
  assert.deepEqual(await readBytes(named, 8), hex('00 5b 0000 00000000'));
  assert.equal((await gw.accessLog((l) => l.protocol === 'socks4' && l.error === 'socks4 command 128'))?.dest, 'example.com:443');
  // A SOCKS4a request with an empty HOSTNAME: 0x01 (general failure); the USERID before it was read, and is logged.
  const empty = await rawClient(gw.port);
  t.after(() => empty.destroy());
  empty.write(hex('04 01 0050 00000001 616c696365 00 00'));
  assert.deepEqual(await readBytes(empty, 8), hex('00 5b 0000 00000000'));
  assert.ok(await closedWithin(empty));
  const line = await gw.accessLog((l) => l.protocol === 'socks4' && l.error === 'socks4a empty hostname');
  assert.equal(line?.rep, 0x01);
  assert.equal(line?.userid, 'alice');
  const long = await rawClient(gw.port);
  t.after(() => long.destroy());
  long.write(Buffer.concat([hex('04 01 0050 00000001 6361726f6c 00'), Buffer.alloc(300, 0x61)]));
  assert.deepEqual(await readBytes(long, 8), hex('00 5b 0000 00000000'));
  assert.equal((await gw.accessLog((l) => l.protocol === 'socks4' && l.error === 'socks4 HOSTNAME longer than 255 bytes'))?.userid, 'carol');
});

test('SOCKS4 BIND: first reply names the listener, second the peer, then bytes both ways', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(hex('04 02 0000 7f000001 00'));
  const first = await readBytes(s, 8);
  assert.equal(first[1], 0x5a);
  const port = first.readUInt16BE(2);
  assert.notEqual(port, 0);
  const peer = connect({ host: '127.0.0.1', port });
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const second = await readBytes(s, 8);
  assert.equal(second[1], 0x5a);
  assert.equal(second.readUInt16BE(2), peer.localPort);
  assert.deepEqual([...second.subarray(4)], [127, 0, 0, 1]);
  peer.write('from peer');
  assert.equal((await readBytes(s, 9)).toString(), 'from peer');
  s.write('from client');
  assert.equal((await readBytes(peer, 11)).toString(), 'from client');
});

test('SOCKS4a BIND naming its peer as IPv6 text in another form (0:0:0:0:0:0:0:1) admits that peer', async (t) => {
  const gw = await startGateway({ listen: [{ host: '::1', port: 0 }] });
  t.after(() => gw.close());
  const s = await rawClient(gw.port, '::1');
  t.after(() => s.destroy());
  s.write(Buffer.concat([hex('04 02 0000 00000001 00'), Buffer.from('0:0:0:0:0:0:0:1\0', 'latin1')]));
  const first = await readBytes(s, 8);
  assert.equal(first[1], 0x5a);
  const peer = connect({ host: '::1', port: first.readUInt16BE(2) });
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  const second = await readBytes(s, 8); // a peer refused as a stranger leaves this to bind_timeout
  assert.equal(second[1], 0x5a);
  assert.equal(second.readUInt16BE(2), peer.localPort);
  peer.write('from peer');
  assert.equal((await readBytes(s, 9)).toString(), 'from peer');
});

test('listen.protocols restricts a listener: a client speaking another protocol is closed', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, protocols: ['socks5'] }] });
  t.after(() => gw.close());
  const four = await rawClient(gw.port);
  four.write(hex(`04 01 ${portHex(echo.port)} 7f000001 00`));
  assert.equal((await readBytes(four, 8)).length, 0);
  assert.ok(await closedWithin(four));
  const http = await curl(['-x', `http://127.0.0.1:${gw.port}`, `http://127.0.0.1:${echo.port}/`]);
  assert.notEqual(http.code, 0);
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  socket.destroy();
  assert.ok(await gw.accessLog((l) => l.error === 'socks4 not served on this listener'));
  assert.ok(await gw.accessLog((l) => l.error === 'http not served on this listener'));

  const httpOnly = await startGateway({ listen: [{ host: '127.0.0.1', port: 0, protocols: ['http'] }] });
  t.after(() => httpOnly.close());
  await assert.rejects(socksConnect(httpOnly.port, { host: '127.0.0.1', port: echo.port }, 2_000));
});

test('handshake_timeout bounds a SOCKS4 request that trickles in, however active the client is', async (t) => {
  const gw = await startGateway({ limits: { handshake_timeout: '1s' } });
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  // A byte written as the gateway closes may come back as a reset: an end like any other here.
  s.on('error', () => {});
  s.write(hex('04 01 0050 7f000001'));
  const timer = setInterval(() => s.write('a'), 100); // a USERID that never ends, 1 byte at a time
  t.after(() => clearInterval(timer));
  assert.ok(await closedWithin(s, 5_000));
  clearInterval(timer);
  const line = await gw.accessLog((l) => l.protocol === 'socks4');
  assert.equal(line?.error, 'handshake timeout');
});

test('SOCKS4 BIND whose listener is IPv6 while the client came over IPv4: 0x5B (logged 0x08), not a grant naming 0.0.0.0', async (t) => {
  // Direct: a 4a peer named ::1 can only reach a listener on ::1, which SOCKS4's 4-byte DSTIP
  // cannot name, and 0.0.0.0 would send the peer to 127.0.0.1, where nothing listens for it.
  const gw = await startGateway();
  t.after(() => gw.close());
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.write(Buffer.concat([hex('04 02 0000 00000001 00'), Buffer.from('::1\0', 'latin1')]));
  assert.deepEqual(await readBytes(s, 8), hex('00 5b 0000 00000000'));
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => l.protocol === 'socks4' && l.cmd === 'bind');
  assert.equal(line?.rep, 0x08);
  assert.match(String(line?.error), /cannot name/);

  // Through an upstream whose first reply names an IPv6 listener: the same, and the upstream's BIND is closed.
  const v6 = Buffer.from([5, 0, 0, 4, ...Array<number>(15).fill(0), 1, 0x1f, 0x90]); // [::1]:8080
  const up = await startScriptedSocks(v6);
  t.after(() => up.close());
  const gw2 = await startGateway({ upstreams: { up: { type: 'socks5', host: up.host, port: up.port } }, rules: [{ name: 'bind-out', commands: ['bind'], action: 'up' }] });
  t.after(() => gw2.close());
  const s2 = await rawClient(gw2.port);
  t.after(() => s2.destroy());
  s2.write(hex('04 02 0000 7f000001 00'));
  assert.deepEqual(await readBytes(s2, 8), hex('00 5b 0000 00000000'));
  assert.ok(await closedWithin(s2));
  assert.ok(await closedWithin(await up.accepted), 'the upstream BIND is closed');
  assert.equal((await gw2.accessLog((l) => l.protocol === 'socks4' && l.cmd === 'bind'))?.rep, 0x08);
});

test('SOCKS4 BIND from a client that came over IPv6, on a listener at that same address: 0x5A with 0.0.0.0, "the address you reached"', async (t) => {
  const gw = await startGateway({ listen: [{ host: '::1', port: 0 }] });
  t.after(() => gw.close());
  const s = await rawClient(gw.port, '::1');
  t.after(() => s.destroy());
  s.write(hex('04 02 0000 00000000 00')); // DSTIP 0.0.0.0: any peer
  const first = await readBytes(s, 8);
  assert.equal(first[1], 0x5a);
  assert.deepEqual([...first.subarray(4)], [0, 0, 0, 0]);
  const peer = connect({ host: '::1', port: first.readUInt16BE(2) });
  t.after(() => peer.destroy());
  await once(peer, 'connect');
  assert.equal((await readBytes(s, 8))[1], 0x5a);
});

test('a SOCKS4 USERID is read as UTF-8, as SOCKS5 usernames are, and an empty one is left out of the line', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway();
  t.after(() => gw.close());
  // jörg and Ābel: Ā's second UTF-8 byte is 0x80, a C1 control when each byte is read as a char.
  for (const userId of ['jörg', 'Ābel', '']) {
    const s = await rawClient(gw.port);
    t.after(() => s.destroy());
    s.write(Buffer.concat([hex(`04 01 ${portHex(echo.port)} 7f000001`), Buffer.from(`${userId}\0`, 'utf8')]));
    assert.equal((await readBytes(s, 8))[1], 0x5a, userId);
    s.write(`from ${userId || 'nobody'}`);
    await readBytes(s, Buffer.byteLength(`from ${userId || 'nobody'}`));
    s.end();
  }
  for (const userId of ['jörg', 'Ābel']) {
    const line = await gw.accessLog((l) => l['userid'] === userId);
    assert.equal(line?.['rep'], 0, `${userId}: logged as sent`);
  }
  await gw.accessLog((l) => l['protocol'] === 'socks4' && Number(l['up']) === 'from nobody'.length);
  const lines = gw.logs.filter((l) => l.msg === 'session end' && l['protocol'] === 'socks4');
  assert.equal(lines.length, 3);
  const empty = lines.find((l) => Number(l['up']) === 'from nobody'.length);
  assert.ok(empty);
  assert.equal('userid' in empty, false, 'no USERID sent: no field, as any other field left undefined');
});
