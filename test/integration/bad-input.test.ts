// Every malformed handshake gets the RFC 1928 answer or a clean close, and a
// healthy client on the same gateway keeps working throughout.
import { test, before, after } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closedWithin, rawClient, readBytes, socksConnect, startEchoServer, startGateway, type TestGateway, type TestServer } from '../helpers/index.js';

let gw: TestGateway;
let echo: TestServer;
before(async () => {
  echo = await startEchoServer();
  gw = await startGateway({ limits: { handshake_timeout: '1s' } });
});
after(async () => {
  await gw.close();
  await echo.close();
});

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const portHex = (p: number): string => p.toString(16).padStart(4, '0');

/** A healthy CONNECT + echo on the same gateway: the bad client disturbed nothing. */
async function stillServes(): Promise<void> {
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000);
  socket.write('ok?');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'ok?');
  socket.destroy();
}

test('a first byte that is no protocol (0x06): closed without a reply', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('06 01 00'));
  const got = await readBytes(s, 10);
  assert.equal(got.length, 0);
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('NMETHODS 0: method 0xFF, then close', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 00'));
  assert.deepEqual(await readBytes(s, 2), hex('05 ff'));
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('no acceptable method (only GSSAPI offered): 0xFF, then close', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01 01'));
  assert.deepEqual(await readBytes(s, 2), hex('05 ff'));
  assert.ok(await closedWithin(s));
});

test('unsupported command: reply 0x07', async () => {
  const s = await rawClient(gw.port);
  s.write(hex(`05 01 00  05 09 00 01 7f000001 ${portHex(echo.port)}`));
  assert.deepEqual(await readBytes(s, 2), hex('05 00'));
  const reply = await readBytes(s, 10);
  assert.equal(reply[0], 5);
  assert.equal(reply[1], 0x07);
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('unsupported command: the access-log line names the destination and 0x07, once', async () => {
  const s = await rawClient(gw.port);
  // 0xF0 is Tor's RESOLVE: a real client sends it with the name it wants resolved.
  s.write(hex(`05 01 00  05 f0 00 03 0b 6578616d706c652e636f6d ${portHex(echo.port)}`));
  assert.deepEqual(await readBytes(s, 12), hex('05 00  05 07 00 01 00000000 0000'));
  assert.ok(await closedWithin(s));
  const line = await gw.accessLog((l) => l['dest'] === `example.com:${echo.port}`);
  assert.ok(line, 'the line names the destination the client sent');
  assert.equal(line['rep'], 0x07);
  assert.equal(line['error'], 'unknown command 240');
  assert.equal(gw.logs.filter((l) => l.msg === 'session end' && l['sid'] === line['sid']).length, 1);
});

test('bad address type: reply 0x08', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01 00  05 01 00 07 7f000001 0050'));
  assert.deepEqual(await readBytes(s, 2), hex('05 00'));
  const reply = await readBytes(s, 10);
  assert.equal(reply[1], 0x08);
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('zero-length domain: failure reply, then close', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01 00  05 01 00 03 00 0050'));
  assert.deepEqual(await readBytes(s, 2), hex('05 00'));
  const reply = await readBytes(s, 10);
  assert.equal(reply[0], 5);
  assert.notEqual(reply[1], 0x00);
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('truncated request then EOF: closed, nothing else happens', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01 00  05 01 00 01 7f00'));
  assert.deepEqual(await readBytes(s, 2), hex('05 00'));
  s.end();
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('a silent client is cut off by handshake_timeout', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01'));
  assert.ok(await closedWithin(s, 4_000));
});

test('garbage instead of a greeting: closed', async () => {
  const s = await rawClient(gw.port);
  s.write(Buffer.alloc(4_000, 0x41));
  assert.ok(await closedWithin(s));
  await stillServes();
});

test('garbage after the handshake is relayed as payload, not parsed', async () => {
  const s = await rawClient(gw.port);
  const junk = hex('05 01 00 ff ff 00 00 03');
  s.write(Buffer.concat([hex(`05 01 00  05 01 00 01 7f000001 ${portHex(echo.port)}`), junk]));
  const head = await readBytes(s, 2 + 10);
  assert.deepEqual(head.subarray(0, 2), hex('05 00'));
  assert.equal(head[3], 0x00, 'succeeded');
  assert.deepEqual(await readBytes(s, junk.length), junk);
  s.destroy();
});

test('greeting + request + payload in one packet', async () => {
  const s = await rawClient(gw.port);
  s.write(Buffer.concat([hex(`05 01 00 05 01 00 01 7f000001 ${portHex(echo.port)}`), Buffer.from('early')]));
  const head = await readBytes(s, 12);
  assert.equal(head[3], 0x00);
  assert.equal((await readBytes(s, 5)).toString(), 'early');
  s.destroy();
});

test('the whole handshake one byte at a time', async () => {
  const auth = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  try {
    const s = await rawClient(auth.port);
    s.setNoDelay(true);
    const greeting = hex('05 01 02');
    const login = Buffer.concat([hex('01 03'), Buffer.from('bob'), hex('02'), Buffer.from('pw')]);
    const request = hex(`05 01 00 01 7f000001 ${portHex(echo.port)}`);
    for (const b of greeting) s.write(Buffer.from([b]));
    assert.deepEqual(await readBytes(s, 2), hex('05 02'));
    for (const b of login) s.write(Buffer.from([b]));
    assert.deepEqual(await readBytes(s, 2), hex('01 00'));
    for (const b of request) s.write(Buffer.from([b]));
    const reply = await readBytes(s, 10);
    assert.equal(reply[1], 0x00);
    s.write('x');
    assert.equal((await readBytes(s, 1)).toString(), 'x');
    s.destroy();
  } finally {
    await auth.close();
  }
});

test('wrong password: status ≠ 0, then close; pipelined greeting + auth + request', async () => {
  const auth = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  try {
    const s = await rawClient(auth.port);
    const login = Buffer.concat([hex('01 03'), Buffer.from('bob'), hex('02'), Buffer.from('no')]);
    s.write(Buffer.concat([hex('05 01 02'), login, hex(`05 01 00 01 7f000001 ${portHex(echo.port)}`)]));
    assert.deepEqual(await readBytes(s, 2), hex('05 02'));
    const status = await readBytes(s, 2);
    assert.equal(status[0], 0x01);
    assert.notEqual(status[1], 0x00);
    assert.ok(await closedWithin(s));
  } finally {
    await auth.close();
  }
});

/**
 * Sends `bytes` after the gateway's last answer and its FIN, then half-closes: resolves to
 * whether the connection ended in an error (a reset) rather than a clean close.
 */
async function resetAfterSending(s: import('node:net').Socket, bytes: number): Promise<boolean> {
  let failed = false;
  s.on('error', () => (failed = true));
  const closed = new Promise<boolean>((resolve) => s.once('close', resolve));
  s.resume();
  if (!s.readableEnded) await once(s, 'end');
  s.end(Buffer.alloc(bytes));
  return (await closed) || failed;
}

// More than loopback's socket buffers hold, so a gateway that stopped reading would have to
// reset the connection to close it.
const AFTER_REFUSAL = 16 * 1024 * 1024;

test('a client refused at method selection that keeps sending is read to its end, not reset', async () => {
  const s = await rawClient(gw.port);
  s.write(hex('05 01 01'));
  assert.deepEqual(await readBytes(s, 2), hex('05 ff'));
  assert.equal(await resetAfterSending(s, AFTER_REFUSAL), false);
  await stillServes();
});

test('a client refused at login that keeps sending is read to its end, not reset', async () => {
  const auth = await startGateway({ auth: { users: [{ username: 'bob', password: 'pw' }] } });
  try {
    const s = await rawClient(auth.port);
    const login = Buffer.concat([hex('01 03'), Buffer.from('bob'), hex('02'), Buffer.from('no')]);
    s.write(Buffer.concat([hex('05 01 02'), login]));
    assert.deepEqual(await readBytes(s, 4), hex('05 02 01 01'));
    assert.equal(await resetAfterSending(s, AFTER_REFUSAL), false);
  } finally {
    await auth.close();
  }
});
