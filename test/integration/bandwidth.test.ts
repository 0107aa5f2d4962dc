// Per-user `bandwidth` through the gateway's relay: one bucket for all of a user's
// connections, both directions, by backpressure. Nothing here asserts a speed: the bucket's
// budget (burst + rate × elapsed, on the test's own clock, which starts before the bucket
// exists) is an upper bound on what can have crossed, whatever the machine's load; an
// unlimited user must cross more than that budget allows; every byte arrives intact.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { readBytes, startGateway, type TestGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { socks5Raw } from '../helpers/raw-proxy.js';
import { drain, payload, sha, startSink, startSource } from '../helpers/transfers.js';
import { metricValue } from '../helpers/metrics.js';
import { closeDgram, socksUdpClient, startUdpEchoServer, udpLogLine } from '../helpers/udp.js';

const KiB = 1024;
const RATE = 256 * KiB;
const BURST = RATE; // TokenBucket's default: one second's worth (at least 64 KiB)
/** Each limited reader may hold one read (≤ 64 KiB) past the budget before it pauses; two readers, generously. */
const MARGIN = 4 * 64 * KiB;
const EACH = 512 * KiB;


test("one user's connections share one bucket both ways; an unlimited user is not held back; nothing is lost", async (t) => {
  const down = payload(EACH, 7);
  const up = payload(EACH, 11);
  const big = payload(8 * 1024 * KiB, 3);
  const source = await startSource(down);
  t.after(() => source.close());
  const bigSource = await startSource(big);
  t.after(() => bigSource.close());
  const sink = await startSink();
  t.after(() => sink.close());
  const gw = await startGateway({
    auth: {
      users: [
        { username: 'alice', password: 'pw', bandwidth: `${RATE}B/s` },
        { username: 'bob', password: 'pw' },
      ],
    },
    limits: { idle_timeout: '60s' },
  });
  t.after(() => gw.close());

  const t0 = performance.now(); // before alice's bucket exists: the budget below can only be generous
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  const dl = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
  t.after(() => dl.socket.destroy());
  const ul = await socks5Raw(gw.port, sink.port, { user: 'alice', password: 'pw' });
  t.after(() => ul.socket.destroy());
  const bob = await socks5Raw(gw.port, bigSource.port, { user: 'bob', password: 'pw' });
  t.after(() => bob.socket.destroy());
  assert.deepEqual([dl.code, ul.code, bob.code], [0, 0, 0]);

  const got = drain(dl.socket);
  const bobGot = drain(bob.socket);
  ul.socket.end(up);
  const over: string[] = [];
  const sample = (): void => {
    const alice = got.count() + sink.received();
    const allowed = budget(); // read after the count: the budget can only be larger
    if (alice > allowed) over.push(`${alice} > ${Math.round(allowed)}`);
  };
  const sampler = setInterval(sample, 20);
  t.after(() => clearInterval(sampler));

  const bobDigest = await bobGot.digest;
  const bobBudget = budget();
  assert.equal(bobGot.count(), big.length);
  assert.equal(bobDigest, sha(big));
  assert.ok(big.length > bobBudget, `bob (unlimited) moved ${big.length} bytes, more than alice's budget for the same time (${Math.round(bobBudget)})`);

  const aliceDigest = await got.digest;
  await sink.done;
  sample();
  clearInterval(sampler);
  assert.deepEqual(over, [], "alice's two connections together never exceeded one bucket's budget");
  assert.equal(got.count(), down.length);
  assert.equal(aliceDigest, sha(down));
  assert.equal(sink.received(), up.length);
  assert.equal(sink.digest(), sha(up));

  dl.socket.destroy();
  ul.socket.destroy();
  const dlLine = await gw.accessLog((l) => l.user === 'alice' && l.down === EACH, 10_000);
  const ulLine = await gw.accessLog((l) => l.user === 'alice' && l.up === EACH, 10_000);
  assert.equal(dlLine?.up, 0, 'byte counts are exact');
  assert.equal(ulLine?.down, 0);
});

test("forwarded HTTP requests charge the same bucket: a user's absolute-form download stays within its budget, intact", async (t) => {
  const body = payload(EACH * 2, 5);
  const web = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const listening = await listenTracked(web);
  t.after(() => listening.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${RATE}B/s` }] } });
  t.after(() => gw.close());

  const t0 = performance.now();
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  const auth = Buffer.from('alice:pw').toString('base64');
  s.write(`GET http://127.0.0.1:${listening.port}/big HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic ${auth}\r\nConnection: close\r\n\r\n`);
  const got = drain(s);
  const over: string[] = [];
  const sampler = setInterval(() => {
    const n = got.count();
    const allowed = budget();
    if (n > allowed) over.push(`${n} > ${Math.round(allowed)}`);
  }, 20);
  t.after(() => clearInterval(sampler));
  await got.digest;
  clearInterval(sampler);
  assert.deepEqual(over, [], 'never past the budget');
  const line = await gw.accessLog((l) => l.user === 'alice' && l.status === 200, 10_000);
  assert.ok(line, 'the request was served');
  assert.ok(got.count() > body.length, `the whole body arrived (${got.count()} bytes with the head)`);
});

/** Sends to whoever connects as fast as it reads, until it closes. */
async function startEndlessSource() {
  const chunk = payload(64 * KiB, 1);
  const server = createServer((s) => {
    s.on('error', () => {});
    s.resume();
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  return listenTracked(server);
}

function configOf(partial: Record<string, unknown>): Config {
  return parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), '/tmp/socksgate-test.yaml', {});
}

test("a reload that changes a user's bandwidth holds the connections already open to it too: one bucket at the new rate", async (t) => {
  const source = await startEndlessSource();
  t.after(() => source.close());
  const FAST = 1024 * KiB;
  const SLOW = 128 * KiB;
  const config = (rate: number) => ({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${rate}B/s` }] }, limits: { idle_timeout: '60s' } });
  const gw = await startGateway(config(FAST));
  t.after(() => gw.close());

  const before = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
  t.after(() => before.socket.destroy());
  assert.equal(before.code, 0);
  const old = drain(before.socket);
  for (let waited = 0; waited < 5_000 && old.count() === 0; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.ok(old.count() > 0, 'the first connection is under way');

  await gw.gw.reload(configOf(config(SLOW)));
  const t0 = performance.now();
  const from = old.count();
  // The new rate's burst is one second's worth of it; what the old connection was waiting
  // out when the rate changed is within the margin.
  const budget = (): number => SLOW + (SLOW * (performance.now() - t0)) / 1000 + MARGIN;
  const after = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
  t.after(() => after.socket.destroy());
  assert.equal(after.code, 0);
  const fresh = drain(after.socket);

  const over: string[] = [];
  const deadline = performance.now() + 3_000;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    const alice = old.count() - from + fresh.count();
    const allowed = budget();
    if (alice > allowed) over.push(`${alice} > ${Math.round(allowed)}`);
  }
  assert.deepEqual(over.slice(0, 3), [], "after the reload alice's connections, old and new, move no more than the new rate allows");
  assert.ok(fresh.count() > 0, 'the new connection is served');
});

test('a SOCKS5 request whose handshake began before the reload is held to the reloaded rate', async (t) => {
  const source = await startEndlessSource();
  t.after(() => source.close());
  const config = (rate: number) => ({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${rate}B/s` }] }, limits: { idle_timeout: '60s' } });
  const gw = await startGateway(config(1024 * KiB));
  t.after(() => gw.close());

  // Greeting and login on the config before the reload; the request after it.
  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'connect');
  s.write(Buffer.from([5, 1, 2, 1, 5, ...Buffer.from('alice'), 2, ...Buffer.from('pw')]));
  assert.equal((await readBytes(s, 4)).toString('hex'), '05020100', 'logged in');
  await gw.gw.reload(configOf(config(RATE)));
  const t0 = performance.now();
  s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, source.port >> 8, source.port & 0xff]));
  assert.equal((await readBytes(s, 10))[1], 0, 'granted');
  const got = drain(s);
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  const over: string[] = [];
  const deadline = performance.now() + 2_500;
  while (performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    const n = got.count();
    const allowed = budget();
    if (n > allowed) over.push(`${n} > ${Math.round(allowed)}`);
  }
  assert.deepEqual(over.slice(0, 3), [], 'held to the rate the reload set, not the one its handshake began on');
  assert.ok(got.count() > 0, 'served');
});

test('a reload that gives a user a bandwidth reaches the next request on a kept-alive HTTP connection', async (t) => {
  const body = payload(EACH * 2, 9);
  const web = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const listening = await listenTracked(web);
  t.after(() => listening.close());
  const users = (bandwidth?: string) => ({ auth: { users: [{ username: 'alice', password: 'pw', ...(bandwidth ? { bandwidth } : {}) }] } });
  const gw = await startGateway(users());
  t.after(() => gw.close());

  const s = connect({ host: '127.0.0.1', port: gw.port });
  t.after(() => s.destroy());
  await once(s, 'connect');
  const auth = Buffer.from('alice:pw').toString('base64');
  const get = `GET http://127.0.0.1:${listening.port}/big HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic ${auth}\r\n\r\n`;
  let received = 0;
  s.on('data', (c: Buffer) => (received += c.length));
  s.write(get);
  for (let i = 0; i < 500 && received < body.length; i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(received > body.length, 'the first response came whole, unlimited');

  await gw.gw.reload(configOf(users(`${RATE}B/s`)));
  const t0 = performance.now();
  const from = received;
  const budget = (): number => BURST + (RATE * (performance.now() - t0)) / 1000 + MARGIN;
  s.write(get); // the same connection: node's parser serves it as the next request
  const over: string[] = [];
  for (let i = 0; i < 500 && received - from <= body.length; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const n = received - from;
    const allowed = budget();
    if (n > allowed) over.push(`${n} > ${Math.round(allowed)}`);
  }
  assert.deepEqual(over.slice(0, 3), [], 'the next request is held to the bandwidth the reload gave alice');
  assert.ok(received - from > body.length, 'the second response came whole, on the same connection');
});

/** A gateway whose user alice (password pw) is held to `rate` bytes/s, with `idle_timeout`; closed after the test. */
async function slowAlice(t: TestContext, rate: number, idleTimeout: string): Promise<TestGateway> {
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: `${rate}B/s` }] }, limits: { idle_timeout: idleTimeout } });
  t.after(() => gw.close());
  return gw;
}

test("a connection waiting out its user's debt is not idle: several of one user's transfers past idle_timeout all complete", async (t) => {
  // Six connections share 128 KiB/s: each one's share comes to a read every few seconds, past
  // the one-second idle_timeout, while the user moves data at the limit all along.
  const RATE_SLOW = 128 * KiB;
  const down = payload(RATE_SLOW, 13);
  const source = await startSource(down);
  t.after(() => source.close());
  const gw = await slowAlice(t, RATE_SLOW, '1s');
  const digests = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const c = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
      t.after(() => c.socket.destroy());
      assert.equal(c.code, 0);
      c.socket.on('end', () => c.socket.end());
      const got = drain(c.socket);
      return { count: got.count, digest: await got.digest };
    }),
  );
  for (const d of digests) {
    assert.equal(d.count(), down.length, 'every byte arrived');
    assert.equal(d.digest, sha(down));
  }
  for (let i = 0; i < 100 && gw.logs.filter((l) => l.msg === 'session end').length < 6; i++) await new Promise((r) => setTimeout(r, 20));
  const ends = gw.logs.filter((l) => l.msg === 'session end');
  assert.deepEqual(
    ends.map((l) => [l.down, l.error]),
    ends.map(() => [down.length, undefined]),
    'none cut as idle',
  );
});

test("an absolute-form download waiting out its user's debt past idle_timeout is not cut as an idle origin", async (t) => {
  const RATE_SLOW = 128 * KiB;
  const body = payload(RATE_SLOW, 17);
  const web = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-length': body.length });
    res.end(body);
  });
  const listening = await listenTracked(web);
  t.after(() => listening.close());
  const gw = await slowAlice(t, RATE_SLOW, '1s');
  const auth = Buffer.from('alice:pw').toString('base64');
  const counts = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const s = connect({ host: '127.0.0.1', port: gw.port });
      t.after(() => s.destroy());
      s.on('error', () => {});
      await once(s, 'connect');
      s.write(`GET http://127.0.0.1:${listening.port}/ HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic ${auth}\r\nConnection: close\r\n\r\n`);
      const got = drain(s);
      await got.digest;
      return got.count();
    }),
  );
  for (const n of counts) assert.ok(n > body.length, `the whole body arrived (${n} bytes with the head)`);
  const lines = gw.logs.filter((l) => l.msg === 'session end' || l.status !== undefined);
  assert.deepEqual(
    lines.filter((l) => l.error !== undefined).map((l) => l.error),
    [],
    'none cut as idle',
  );
});

test("one user's connections one after another share the bucket too: short transfers in a row are held to the rate", async (t) => {
  // Each transfer fits in the burst: a bucket forgotten with its last connection would let
  // every one of them through at full speed.
  const RATE_SLOW = 128 * KiB;
  const down = payload(RATE_SLOW, 19);
  const source = await startSource(down);
  t.after(() => source.close());
  const gw = await slowAlice(t, RATE_SLOW, '60s');
  const t0 = performance.now();
  let total = 0;
  for (let i = 0; i < 4; i++) {
    const c = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
    t.after(() => c.socket.destroy());
    assert.equal(c.code, 0);
    c.socket.on('end', () => c.socket.end());
    const got = drain(c.socket);
    assert.equal(await got.digest, sha(down), 'intact');
    await once(c.socket, 'close');
    total += got.count();
    const allowed = RATE_SLOW + (RATE_SLOW * (performance.now() - t0)) / 1000 + MARGIN;
    assert.ok(total <= allowed, `after ${i + 1} transfers: ${total} bytes, no more than the budget (${Math.round(allowed)})`);
  }
});

test("a reload that lifts or raises a user's bandwidth frees the transfers under way at once, not after the debt the old rate reckoned", async (t) => {
  // Four connections at 32 KiB/s owe seconds each after their first reads; once the limit is
  // lifted, what is left of the megabyte goes at loopback speed.
  const down = payload(256 * KiB, 23);
  const source = await startSource(down);
  t.after(() => source.close());
  const config = (bandwidth?: string) => ({ auth: { users: [{ username: 'alice', password: 'pw', ...(bandwidth ? { bandwidth } : {}) }] }, limits: { idle_timeout: '60s' } });
  for (const to of [undefined, '1GiB/s']) {
    const gw = await startGateway(config('32KiB/s'));
    t.after(() => gw.close());
    const transfers = Array.from({ length: 4 }, async () => {
      const c = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
      t.after(() => c.socket.destroy());
      assert.equal(c.code, 0);
      c.socket.on('end', () => c.socket.end());
      const got = drain(c.socket);
      assert.equal(await got.digest, sha(down), 'intact');
      return performance.now();
    });
    await new Promise((r) => setTimeout(r, 500));
    await gw.gw.reload(configOf(config(to)));
    const reloaded = performance.now();
    const done = await Promise.all(transfers);
    const late = Math.max(...done) - reloaded;
    assert.ok(late < 2_500, `${to ?? 'no limit'}: all done ${Math.round(late)} ms after the reload`);
    await gw.close();
  }
});

test("a user's UDP datagrams charge the same bucket: past it they are dropped and counted, not relayed at any speed", async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const began = performance.now();
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: '64KiB/s' }] } });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice', pass: 'pw' } });
  const DATAGRAM = 8 * KiB;
  const chunk = payload(DATAGRAM, 7).toString('latin1');
  for (let i = 0; i < 64; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, chunk);
    await new Promise((r) => setImmediate(r));
  }
  let answers = 0;
  while (answers < 64 && (await c.receive(500)) !== undefined) answers++;
  await c.close();
  const line = await udpLogLine(gw);
  const elapsed = (performance.now() - began) / 1000;
  const udp = line?.['udp'] as { sent: number; received: number; dropped: Record<string, number> } | undefined;
  assert.ok(udp, 'the association has its line');
  const crossed = (udp.sent + udp.received) * DATAGRAM;
  // 64 KiB/s bursts 64 KiB, and datagrams may run the bucket into a debt of one burst more
  // (which TCP readers wait out): what crossed both ways fits that (one datagram over, at most, each way).
  assert.ok(crossed <= 2 * 64 * KiB + 64 * KiB * elapsed + 2 * DATAGRAM, `${crossed} bytes crossed in ${elapsed.toFixed(2)} s`);
  assert.ok(udp.sent > 0 && answers > 0, 'within the budget datagrams go both ways');
  assert.ok((udp.dropped['bandwidth'] ?? 0) > 0, `the rest dropped as over the bandwidth: ${JSON.stringify(udp.dropped)}`);
});

test("a user's datagram dropped by its channel after the charge is refunded: the egress guard's drops do not use up the bucket", async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  // 1 KiB/s: a 64 KiB burst, and datagrams may owe one burst more; what the test's seconds refill is far below the 192 KiB sent.
  const gw = await startGateway({
    auth: { users: [{ username: 'alice', password: 'pw', bandwidth: '1KiB/s' }] },
    egress: { deny: ['127.0.0.2/32'] },
  });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice', pass: 'pw' } });
  const DATAGRAM = 8 * KiB;
  const SENT = 24; // 192 KiB: past the 128 KiB datagrams may run the bucket to
  const chunk = payload(DATAGRAM, 11);
  for (let i = 0; i < SENT; i++) {
    c.send({ host: '127.0.0.2', port: echo.port }, chunk); // denied by the guard: nothing leaves
    await new Promise((r) => setImmediate(r));
  }
  // None of the denied bytes left: the bucket still holds its burst for this one.
  let answer;
  for (let tries = 0; tries < 3 && answer === undefined; tries++) {
    c.send({ host: '127.0.0.1', port: echo.port }, 'after the denied ones');
    answer = await c.receive(1_000);
  }
  await c.close();
  const line = await udpLogLine(gw);
  const udp = line?.['udp'] as { dropped: Record<string, number> } | undefined;
  assert.ok(udp, 'the association has its line');
  assert.equal(udp.dropped['bandwidth'], undefined, `no datagram dropped as over the bandwidth: ${JSON.stringify(udp.dropped)}`);
  assert.ok((udp.dropped['denied'] ?? 0) > (2 * 64) / 8, `more denied than the bucket could have paid for: ${JSON.stringify(udp.dropped)}`);
  assert.ok(answer !== undefined, 'a datagram after them is relayed and answered');
});

test("a user's answer dropped on its way to the client after the charge is refunded: a full send queue does not use up the bucket", async (t) => {
  // Answers far larger than what they answer: each is 32 KiB, and the client asks with 1 byte.
  const ANSWER = 32 * KiB;
  const server = createSocket('udp4');
  server.on('message', (_msg, from) => server.send(Buffer.alloc(ANSWER, 0x61), from.port, from.address));
  server.bind(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => closeDgram(server));
  const dest = { host: '127.0.0.1', port: server.address().port };
  // The gateway holds 16 KiB of datagrams at once: a question fits, an answer never does, and
  // every one is dropped as queue_full once it was charged. 1 KiB/s: a 64 KiB burst, a debt of
  // one burst more; the 256 KiB of answers are far past both.
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: '1KiB/s' }] } }, { udpBufferBytes: 16 * KiB });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice', pass: 'pw' } });
  const ASKED = 8;
  const settled = async (): Promise<number> => {
    let n = 0;
    for (const direction of ['up', 'down']) {
      for (const result of ['queue_full', 'bandwidth']) n += (await metricValue(gw.gw, 'socksgate_udp_datagrams_total', { direction, result })) || 0;
    }
    return n;
  };
  for (let i = 1; i <= ASKED; i++) {
    c.send(dest, 'x');
    for (let tries = 0; tries < 200 && (await settled()) < i; tries++) await new Promise((r) => setTimeout(r, 10));
  }
  await c.close();
  const line = await udpLogLine(gw);
  const udp = line?.['udp'] as { sent: number; received: number; dropped: Record<string, number> } | undefined;
  assert.ok(udp, 'the association has its line');
  assert.deepEqual(udp.dropped, { queue_full: ASKED }, 'every answer dropped as queue_full, none as over the bandwidth');
  assert.equal(udp.sent, ASKED, 'every question left');
  assert.equal(udp.received, 0);
});

test("a user's download at the bandwidth limit leaves their UDP a share: datagrams pass, and the download waits them out", async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const source = await startSource(payload(4 * RATE, 3)); // four seconds' worth at the user's rate
  t.after(() => source.close());
  const gw = await startGateway({ auth: { users: [{ username: 'alice', password: 'pw', bandwidth: '256KiB/s' }] } });
  t.after(() => gw.close());
  const dl = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
  assert.equal(dl.code, 0);
  t.after(() => dl.socket.destroy());
  const download = drain(dl.socket);
  // Past the first second's burst the download reads at the limit, and the bucket stays in debt.
  for (let i = 0; i < 100 && download.count() < 1.5 * RATE; i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(download.count() >= 1.5 * RATE, `the download is under way: ${download.count()} bytes`);
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port }, { login: { user: 'alice', pass: 'pw' } });
  const chunk = payload(200, 5).toString('latin1');
  let answers = 0;
  for (let i = 0; i < 20; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, chunk);
    if ((await c.receive(500)) !== undefined) answers++;
  }
  await c.close();
  // 20 datagrams of 200 bytes are 1.5 % of the rate: a bucket shared with the download passes them.
  assert.equal(answers, 20, `${answers} of 20 echoed while the download ran at the limit`);
});
