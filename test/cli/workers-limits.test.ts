// `workers: 2`: the per-source and per-user shares, `auth_failures` and a user's `bandwidth`
// are the instance's, not each worker's (PRODUCT.md "Limits"). The primary hands connections to the workers in turn
// (NODE_CLUSTER_SCHED_POLICY=rr), so consecutive clients land on alternate workers: with
// counts kept per worker, each of the two would admit a full share.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { closedWithin, rawClient, readBytes, startEchoServer, startHttpServer } from '../helpers/index.js';
import { echoOnce, httpConnectRaw, readHead, socks5Raw, type RawAnswer } from '../helpers/raw-proxy.js';
import { UNANSWERED } from '../../src/server/limits.js';
import { drain, payload, sha, startSource } from '../helpers/transfers.js';
import { BASE, BOOT_MS, sessionEnds, started, tempConfig, waitUntil, workerLines } from '../helpers/workers.js';

const IN_TURN = { env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } };
const LATE_HOLDS = new URL('../helpers/late-bandwidth-holds.ts', import.meta.url).href;

async function twoWorkers(limits: string, extra = '', preload: readonly string[] = []): Promise<RunningGateway> {
  const path = await tempConfig(BASE.replace('limits: { drain_timeout: 5s }', `limits: { drain_timeout: 5s, ${limits} }`) + extra);
  return startCliGateway(path, [], preload, BOOT_MS, IN_TURN);
}

const KiB = 1024;
/** A `users:` block: alice, password pw, at `rate` bytes a second. */
const aliceAt = (rate: number): string => `auth:\n  users:\n    - { username: alice, password: pw, bandwidth: ${rate}B/s }\n`;

/**
 * Watches transfers against one bucket of `rate` from now on: its burst (one second's worth,
 * TokenBucket's default), the rate since, and one read (at most 64 KiB) each reader may take
 * past its budget before it pauses, generously. Nothing here asserts a speed, only that the
 * transfers together never crossed more than one bucket allows since before either began.
 * sample() notes a crossing in `over`.
 */
function oneBucket(rate: number, moved: () => number): { sample: () => void; over: string[] } {
  const t0 = performance.now();
  const over: string[] = [];
  const sample = (): void => {
    const n = moved();
    const allowed = rate + (rate * (performance.now() - t0)) / 1000 + 4 * 64 * KiB; // read after the count: it can only be larger
    if (n > allowed) over.push(`${n} > ${Math.round(allowed)}`);
  };
  return { sample, over };
}

/** The workers (by pid) whose access-log lines are in so far. */
const servingPids = (gw: RunningGateway): Set<unknown> => new Set(sessionEnds(gw).map((l) => l.pid));

test('max_connections_per_source counts the connections of both workers, and a closed one gives its slot back', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await twoWorkers('max_connections_per_source: 3');
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));

  for (let i = 0; i < 3; i++) {
    const a = await socks5Raw(gw.port, echo.port);
    held.push(a.socket);
    assert.equal(a.code, 0, `connection ${i + 1} of the share`);
    assert.equal(await echoOnce(a.socket, `held ${i}`), `held ${i}`);
  }
  // The fourth and fifth land on one worker each: both see the instance's share full.
  for (let i = 0; i < 2; i++) {
    const refused = await socks5Raw(gw.port, echo.port);
    assert.equal(refused.code, 0x02, `SOCKS5 past the share (${i + 1}): 0x02`);
    assert.ok(await closedWithin(refused.socket));
  }
  const h = await httpConnectRaw(gw.port, echo.port);
  assert.equal(h.code, 429, 'HTTP CONNECT past the share: 429');
  h.socket.destroy();
  await waitUntil('three refusals logged', () => sessionEnds(gw).length === 3);
  assert.equal(servingPids(gw).size, 2, 'the refusals came from both workers');

  // One closes: its slot is the instance's again, whichever worker the next client lands on.
  held.shift()!.destroy();
  await waitUntil('the closed connection logged', () => sessionEnds(gw).length === 4);
  for (let i = 0; i < 2; i++) {
    const next = await socks5Raw(gw.port, echo.port);
    held.push(next.socket);
    assert.equal(next.code, i === 0 ? 0 : 0x02, i === 0 ? 'the slot given back is taken' : 'and the share is full again');
  }
});

test("a user's max_connections and auth_failures count across both workers", { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const users = 'auth:\n  users:\n    - { username: alice, password: pw, max_connections: 2 }\n    - { username: bob, password: pw }\n';
  const gw = await twoWorkers('auth_failures: { max: 3, window: 1m, block: 5m }', users);
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));

  const alice = { user: 'alice', password: 'pw' };
  for (let i = 0; i < 2; i++) {
    const a = await socks5Raw(gw.port, echo.port, alice);
    held.push(a.socket);
    assert.equal(a.code, 0, `alice's connection ${i + 1}`);
  }
  for (let i = 0; i < 2; i++) {
    const refused = await socks5Raw(gw.port, echo.port, alice);
    assert.equal(refused.code, 0x02, `alice past her share (${i + 1}): 0x02`);
    refused.socket.destroy();
  }
  const bob = await socks5Raw(gw.port, echo.port, { user: 'bob', password: 'pw' });
  assert.equal(bob.code, 0, 'another user is served');
  bob.socket.destroy();
  await waitUntil("the refusals' and bob's lines", () => sessionEnds(gw).length === 3);
  assert.equal(servingPids(gw).size, 2, 'both workers answered');

  // Three wrong passwords from 127.0.0.2, spread over both workers, block that address
  // everywhere: the right password is refused next, whichever worker takes it.
  const from = '127.0.0.2';
  for (let i = 0; i < 3; i++) {
    const wrong = await socks5Raw(gw.port, echo.port, { user: 'bob', password: 'nope', from, timeoutMs: 10_000 });
    assert.equal(wrong.code, -1, `wrong password ${i + 1} refused`);
    wrong.socket.destroy();
  }
  for (let i = 0; i < 2; i++) {
    const right = await socks5Raw(gw.port, echo.port, { user: 'bob', password: 'pw', from });
    assert.equal(right.code, -1, `the blocked address's right password is refused (${i + 1})`);
    right.socket.destroy();
  }
  const elsewhere = await socks5Raw(gw.port, echo.port, { user: 'bob', password: 'pw' });
  assert.equal(elsewhere.code, 0, 'another address logs in');
  elsewhere.socket.destroy();
});

test("a worker that dies gives back the slots its connections held in the instance's share", { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await twoWorkers('max_connections_per_source: 3');
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  for (let i = 0; i < 3; i++) {
    const a = await socks5Raw(gw.port, echo.port);
    held.push(a.socket);
    assert.equal(a.code, 0, `connection ${i + 1} of the share`);
  }
  const full = await socks5Raw(gw.port, echo.port);
  assert.equal(full.code, 0x02, 'the share is full');
  full.socket.destroy();
  // The refusal's worker is the other one's turn next: its line says which took it.
  await waitUntil("the refusal's line", () => sessionEnds(gw).length === 1);
  const refusedBy = sessionEnds(gw)[0]!.pid as number;
  const victim = pids.find((p) => p !== refusedBy)!;
  process.kill(victim, 'SIGKILL');
  await gw.waitFor((l) => l.role === 'primary' && l.msg === 'worker exited; starting a replacement', 30_000);
  // Its connections are gone with it: two of the three (the first and third, in turn).
  const gone = await Promise.all(held.map((s) => closedWithin(s, 10_000)));
  assert.equal(gone.filter(Boolean).length, 2, "the dead worker's two connections closed");
  await waitUntil('the replacement serves', () => gw.lines.filter((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number)).length === 1, BOOT_MS);
  for (let i = 0; i < 3; i++) {
    const next = await socks5Raw(gw.port, echo.port);
    held.push(next.socket);
    assert.equal(next.code, i < 2 ? 0 : 0x02, i < 2 ? `a slot of the dead worker's is taken again (${i + 1})` : 'and the share is full again');
  }
});

test("a user's bandwidth is one budget for both workers: two downloads on two workers stay within it, intact", { timeout: 120_000 }, async (t) => {
  const RATE = 256 * KiB;
  const data = payload(768 * KiB, 5);
  const source = await startSource(data);
  t.after(() => source.close());
  const gw = await twoWorkers('idle_timeout: 60s', aliceAt(RATE));
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);

  const downloads: Array<ReturnType<typeof drain>> = [];
  const budget = oneBucket(RATE, () => downloads.reduce((n, d) => n + d.count(), 0));
  const sockets: Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  for (let i = 0; i < 2; i++) {
    const d = await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' });
    sockets.push(d.socket);
    assert.equal(d.code, 0);
    downloads.push(drain(d.socket));
  }
  const sampler = setInterval(budget.sample, 20);
  t.after(() => clearInterval(sampler));
  const digests = await Promise.all(downloads.map((d) => d.digest));
  budget.sample();
  clearInterval(sampler);
  assert.deepEqual(budget.over, [], "alice's two downloads together never exceeded one bucket's budget");
  for (const [i, d] of downloads.entries()) {
    assert.equal(d.count(), data.length, `download ${i + 1} complete`);
    assert.equal(digests[i], sha(data), `download ${i + 1} intact`);
  }
  sockets.forEach((s) => s.destroy());
  await waitUntil('both lines', () => sessionEnds(gw).length === 2);
  assert.equal(servingPids(gw).size, 2, 'the two downloads ran in the two workers');
});

test('a reload that sets a share counts the connections both workers hold already, and the share is exact once they close', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const config = (limits: string, alice: string): string =>
    BASE.replace('limits: { drain_timeout: 5s }', `limits: { drain_timeout: 5s${limits} }`) +
    `auth:\n  users:\n    - { username: alice, password: pw${alice} }\n    - { username: bob, password: pw }\n`;
  const path = await tempConfig(config('', ''));
  const gw = await startCliGateway(path, [], [], BOOT_MS, IN_TURN);
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  const open = async (n: number, user: string): Promise<number[]> => {
    const codes: number[] = [];
    for (let i = 0; i < n; i++) {
      const a = await socks5Raw(gw.port, echo.port, { user, password: 'pw' });
      held.push(a.socket);
      codes.push(a.code);
    }
    return codes;
  };
  const closeAll = async (): Promise<void> => {
    const lines = sessionEnds(gw).length + held.length;
    held.splice(0).forEach((s) => s.destroy());
    await waitUntil('every connection logged', () => sessionEnds(gw).length === lines);
  };

  // Four connections each of alice and from 127.0.0.1, two in each worker, before any share is set.
  assert.deepEqual(await open(4, 'alice'), [0, 0, 0, 0]);
  await writeFile(path, config(', max_connections_per_source: 6', ', max_connections: 3'));
  gw.child.kill('SIGHUP');
  await waitUntil('the reload in both workers', () => workerLines(gw, 'configuration reloaded').length === 2);
  assert.deepEqual(await open(2, 'alice'), [0x02, 0x02], 'alice holds 4 of a share of 3, in whichever worker');
  assert.deepEqual(await open(4, 'bob'), [0, 0, 0x02, 0x02], 'the address holds 4 of 6 and gets 2 more');
  await closeAll();
  assert.deepEqual(await open(4, 'alice'), [0, 0, 0, 0x02], "alice's share is 3 once the others closed");
  assert.deepEqual(await open(4, 'bob'), [0, 0, 0, 0x02], "and the address's 6");
});

test("a connection a worker admits on its own count, its primary stalled, takes no other's slot back nor keeps one", { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await twoWorkers('max_connections_per_source: 2');
  t.after(() => gw.child.kill('SIGKILL'));
  t.after(() => gw.child.kill('SIGCONT'));
  await started(gw);
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  // One in each worker: the share of 2 is full.
  for (let i = 0; i < 2; i++) {
    const a = await socks5Raw(gw.port, echo.port);
    held.push(a.socket);
    assert.equal(a.code, 0, `connection ${i + 1} of the share`);
  }
  // Greeted before the primary stops, so the connection is its worker's; the request is sent
  // while the primary is stopped, and answered once the worker gave up asking it.
  const stalled = async (): Promise<number> => {
    const s = await rawClient(gw.port);
    s.on('error', () => {});
    s.write(Buffer.from([5, 1, 0]));
    assert.deepEqual([...(await readBytes(s, 2))], [5, 0]);
    gw.child.kill('SIGSTOP');
    s.write(Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, echo.port >> 8, echo.port & 0xff]));
    const reply = await readBytes(s, 10, 30_000);
    gw.child.kill('SIGCONT');
    s.destroy();
    return reply[1] ?? -1;
  };
  // The first worker's turn: it holds 1 of 2 by its own count, and admits. The primary, awake,
  // refuses that slot (the share is full): closing the connection gives nothing back.
  assert.equal(await stalled(), 0, "admitted on the worker's own count");
  await waitUntil("the admitted connection's line", () => sessionEnds(gw).length === 1);
  for (let i = 0; i < 2; i++) {
    const next = await socks5Raw(gw.port, echo.port);
    held.push(next.socket);
    assert.equal(next.code, 0x02, `the two open connections still fill the share (${i + 1})`);
  }
  held.splice(0).forEach((s) => s.destroy());
  await waitUntil('every line', () => sessionEnds(gw).length === 5);
  // Nothing open: the primary, awake, grants the slot it was asked for too late. It goes back.
  assert.equal(await stalled(), 0, 'admitted again');
  await waitUntil("the admitted connection's line", () => sessionEnds(gw).length === 6);
  const codes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const next = await socks5Raw(gw.port, echo.port);
    held.push(next.socket);
    codes.push(next.code);
  }
  assert.deepEqual(codes, [0, 0, 0x02], 'the share is 2 again');
});

test('an HTTP request through a stalled primary waits for it once, not once for its source and again for its user', { timeout: 120_000 }, async (t) => {
  const origin = await startHttpServer();
  t.after(() => origin.close());
  // The workers accept on their own (SCHED_NONE, the default): a stalled primary hands out no connection, and needs not.
  const limits = 'limits: { drain_timeout: 5s, max_connections_per_source: 4 }';
  const path = await tempConfig(BASE.replace('limits: { drain_timeout: 5s }', limits) + 'auth:\n  users:\n    - { username: alice, password: pw, max_connections: 2 }\n');
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  t.after(() => gw.child.kill('SIGCONT'));
  await started(gw);
  gw.child.kill('SIGSTOP');
  const s = await rawClient(gw.port);
  t.after(() => s.destroy());
  s.on('error', () => {});
  const auth = Buffer.from('alice:pw').toString('base64');
  s.write(`GET ${origin.url}/ HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\nProxy-Authorization: Basic ${auth}\r\nConnection: close\r\n\r\n`);
  const head = await readHead(s, 30_000);
  gw.child.kill('SIGCONT');
  assert.match(head, /^HTTP\/1\.1 200 /, "admitted on the worker's own count");
  await waitUntil("the request's line", () => sessionEnds(gw).length === 1);
  // Its source's question, at its head, went unanswered: its user's, after the login, was
  // decided at once, not asked for another wait.
  assert.equal(workerLines(gw, UNANSWERED).length, 1, 'the primary waited for once in the request');
});

test('a replacement worker refuses an address the instance blocked, and goes on from the failures counted', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const users = 'auth:\n  users:\n    - { username: bob, password: pw }\n';
  const gw = await twoWorkers('auth_failures: { max: 3, window: 5m, block: 5m }', users);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  const login = async (from: string, password: string): Promise<number> => {
    const a = await socks5Raw(gw.port, echo.port, { user: 'bob', password, from, timeoutMs: 10_000 });
    a.socket.destroy();
    return a.code;
  };
  // 127.0.0.2 is blocked (three failures); 127.0.0.3 has two of three.
  for (let i = 0; i < 3; i++) assert.equal(await login('127.0.0.2', 'nope'), -1);
  for (let i = 0; i < 2; i++) assert.equal(await login('127.0.0.3', 'nope'), -1);
  await waitUntil('every failure passed on', () => sessionEnds(gw).length === 5);
  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.role === 'primary' && l.msg === 'worker exited; starting a replacement', 30_000);
  await waitUntil('the replacement serves', () => gw.lines.filter((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number)).length === 1, BOOT_MS);
  // In turn: one login each in the survivor and the replacement.
  for (let i = 0; i < 2; i++) assert.equal(await login('127.0.0.2', 'pw'), -1, `the blocked address is refused in both workers (${i + 1})`);
  // The third failure, in whichever worker, blocks 127.0.0.3 in both.
  assert.equal(await login('127.0.0.3', 'nope'), -1);
  await waitUntil('the failure passed on', () => sessionEnds(gw).length === 8);
  for (let i = 0; i < 2; i++) assert.equal(await login('127.0.0.3', 'pw'), -1, `the address blocked after the replacement came is refused in both workers (${i + 1})`);
  assert.equal(await login('127.0.0.1', 'pw'), 0, 'another address logs in');
});

test("two first downloads of one user starting at once on both workers take one burst between them", { timeout: 120_000 }, async (t) => {
  const RATE = 1024 * KiB;
  const source = await startSource(payload(3 * RATE, 9));
  t.after(() => source.close());
  // Each worker says late that it holds the user's bucket: the second asks before the first has said so.
  const gw = await twoWorkers('idle_timeout: 60s', aliceAt(RATE), [LATE_HOLDS]);
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);

  let downloads: Array<ReturnType<typeof drain>> = [];
  const budget = oneBucket(RATE, () => downloads.reduce((n, d) => n + d.count(), 0));
  const opened: RawAnswer[] = [];
  t.after(() => opened.forEach((o) => o.socket.destroy()));
  for (let i = 0; i < 2; i++) opened.push(await socks5Raw(gw.port, source.port, { user: 'alice', password: 'pw' }));
  assert.deepEqual(opened.map((o) => o.code), [0, 0]);
  downloads = opened.map((o) => drain(o.socket));
  // The first second, where two bursts would show: sampled every 20 ms, bounded.
  for (let i = 0; i < 50; i++) {
    budget.sample();
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.deepEqual(budget.over, [], "the two downloads together never exceeded one bucket's budget");
  assert.ok(downloads.every((d) => d.count() > 0), 'both downloads moved');
  opened.forEach((o) => o.socket.destroy());
  await waitUntil('both lines', () => sessionEnds(gw).length === 2);
  assert.equal(servingPids(gw).size, 2, 'the two downloads ran in the two workers');
});
