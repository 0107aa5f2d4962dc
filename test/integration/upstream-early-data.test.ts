// A destination that speaks first and hangs up at once ("421 busy"): its words arrive at the
// upstream together with the CONNECT reply, and must still reach the client.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { rawBind, readReply } from '../helpers/bind.js';
import { readBytes, socksConnect, startGateway } from '../helpers/index.js';
import { socks5Raw } from '../helpers/raw-proxy.js';
import { listenTracked } from '../helpers/servers.js';
import { payload } from '../helpers/transfers.js';

/**
 * Test instrument (scripted SOCKS5 upstream): answers CONNECT with its reply, a banner and FIN
 * in one write, a segment no real server can be made to send on purpose.
 */
async function bannerThenCloseUpstream(banner: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    let stage = 0;
    s.on('data', () => {
      if (stage++ === 0) s.write(Buffer.from([5, 0]));
      else s.end(Buffer.concat([Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]), Buffer.from(banner)]));
    });
  });
  return listenTracked(server);
}

test('bytes that arrive with the upstream reply, then EOF, reach the client before its EOF', async (t) => {
  const upstream = await bannerThenCloseUpstream('421 busy, try later\r\n');
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { hop: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    default: 'hop',
  });
  t.after(() => gw.close());
  for (let i = 0; i < 20; i++) {
    const { socket } = await socksConnect(gw.port, { host: 'mail.example', port: 25 }, 3_000);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.resume();
    await once(socket, 'end');
    assert.equal(Buffer.concat(chunks).toString(), '421 busy, try later\r\n', `attempt ${i}`);
    socket.destroy();
  }
  // The banner came in the upstream's reply segment: it is counted down, the reply is not.
  const line = await gw.accessLog((l) => l.cmd === 'connect');
  assert.equal(line?.down, '421 busy, try later\r\n'.length);
  assert.equal(line?.up, 0);
});

/**
 * Test instrument (scripted SOCKS5 upstream for BIND): the first reply at once; a moment later
 * the second reply, the peer's first words and FIN in one write (a peer that spoke and hung up
 * as soon as it was accepted).
 */
async function bindBannerThenCloseUpstream(banner: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    let stage = 0;
    s.on('data', () => {
      if (stage++ === 0) return void s.write(Buffer.from([5, 0]));
      s.write(Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]));
      setTimeout(() => s.end(Buffer.concat([Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x91]), Buffer.from(banner)])), 20);
    });
  });
  return listenTracked(server);
}

test('BIND: the peer bytes that arrive with the second reply, then EOF, reach the client and are counted down', async (t) => {
  const upstream = await bindBannerThenCloseUpstream('hello from the peer\r\n');
  t.after(() => upstream.close());
  const gw = await startGateway({
    upstreams: { hop: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'hop' }],
  });
  t.after(() => gw.close());
  for (let i = 0; i < 10; i++) {
    const { s, method } = await rawBind(gw.port, { host: '127.0.0.1', port: 0 });
    assert.deepEqual([...method], [5, 0]);
    assert.equal((await readReply(s))?.rep, 0, `first reply, attempt ${i}`);
    assert.equal((await readReply(s))?.rep, 0, `second reply, attempt ${i}`);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.resume();
    await once(s, 'end');
    assert.equal(Buffer.concat(chunks).toString(), 'hello from the peer\r\n', `attempt ${i}`);
    s.destroy();
  }
  // The peer's bytes came in the upstream's reply segment: counted down, the replies not.
  const binds = (): Array<Record<string, unknown>> => gw.logs.filter((l) => l.msg === 'session end' && l.cmd === 'bind');
  await gw.accessLog(() => binds().length >= 10);
  assert.equal(binds().length, 10);
  for (const line of binds()) assert.equal(line.down, 'hello from the peer\r\n'.length, `sid ${String(line.sid)}`);
});

test("bytes that arrive with an HTTP upstream's 200 are charged to the user's bandwidth, and reach the client whole and counted", async (t) => {
  const RATE = 256 * 1024;
  // The bucket's budget (burst + rate × elapsed, on a clock started before the bucket exists)
  // bounds what may have crossed once the last tunnel's bytes are in: what came with each 200
  // was delivered at once, but the debt it left is waited out by the reader after it, which
  // may hold a read or two past the budget before it pauses.
  const BURST = RATE;
  const MARGIN = 2 * 64 * 1024;
  const FIRST = 32 * 1024;
  const TUNNELS = 16; // 512 KiB: the burst and the margin together, and as much again
  const LAST = 256 * 1024; // then a tunnel whose destination goes on sending
  const sizeOf = (i: number): number => (i < TUNNELS ? FIRST : LAST);
  // Test instrument (scripted HTTP upstream): the 200 and a destination's first words (a banner,
  // a greeting) in one write, as a proxy whose destination spoke at once sends them.
  let accepted = 0;
  const server = createServer((s) => {
    s.on('error', () => {});
    const i = accepted++;
    s.once('data', () => s.write(Buffer.concat([Buffer.from('HTTP/1.1 200 Connection established\r\n\r\n'), payload(sizeOf(i), i)])));
  });
  const upstream = await listenTracked(server);
  t.after(() => upstream.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${RATE}B/s` }] },
    upstreams: { hop: { type: 'http', host: '127.0.0.1', port: upstream.port } },
    default: 'hop',
    limits: { idle_timeout: '60s' },
  });
  t.after(() => gw.close());
  const t0 = performance.now();
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  /** A CONNECT through the gateway; resolves with the first `want` bytes that came, and the client's address. */
  const open = async (want: number): Promise<{ got: Buffer; client: string }> => {
    const { socket, code } = await socks5Raw(gw.port, 9, { user: 'alice', password: 'pw' });
    t.after(() => socket.destroy());
    assert.equal(code, 0);
    const client = `127.0.0.1:${socket.localPort}`;
    const got = await readBytes(socket, want, 20_000);
    socket.end();
    return { got, client };
  };
  // The first ones at once (each destination sends its words and no more), then the last.
  const opened = await Promise.all(Array.from({ length: TUNNELS }, () => open(FIRST)));
  const last = await open(LAST);
  const crossed = opened.reduce((n, o) => n + o.got.length, last.got.length);
  assert.ok(crossed <= budget(), `${crossed} bytes crossed, the budget was ${Math.round(budget())}`);
  const got = new Set([...opened.map((o) => o.got.toString('hex')), last.got.toString('hex')]);
  for (let i = 0; i <= TUNNELS; i++) assert.ok(got.has(payload(sizeOf(i), i).toString('hex')), `destination ${i}'s bytes came whole and in order`);
  for (const { client, got: bytes } of [...opened, last]) {
    const line = await gw.accessLog((l) => l.cmd === 'connect' && l.client === client, 10_000);
    assert.equal(line?.down, bytes.length, `${client}: the log counts them`);
  }
});
