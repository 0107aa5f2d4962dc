// The bandwidth limiter on real loopback sockets. Nothing here measures speed: a bucket
// that refills at 1 byte/s lets its burst through and then stops the flow, which is a
// count, and the stop must reach the sender as TCP backpressure, not pile up in between.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { BandwidthLimits, limitReader, TokenBucket } from '../../src/server/bandwidth.js';
import { relay } from '../../src/server/relay.js';

const KiB = 1024;
const CHUNK = 64 * KiB;

test('TokenBucket: the burst passes, then each byte costs 1000/rate ms; refill is capped at the burst', () => {
  let t = 0;
  const b = new TokenBucket(1000, { burst: 1000, now: () => t });
  assert.equal(b.take(1000), 0);
  assert.equal(b.take(500), 500, '500 bytes of debt at 1000 B/s');
  t += 500;
  assert.equal(b.take(0), 0, 'paid');
  t += 60_000;
  assert.equal(b.take(1500), 500, 'a long quiet spell refills only up to the burst');
  assert.throws(() => new TokenBucket(0), RangeError);
});

test('TokenBucket.tryTake (datagrams): passes while the bucket owes less than one burst, spends nothing on a refusal, and TCP readers wait out what it spent', () => {
  let t = 0;
  const b = new TokenBucket(1000, { burst: 1000, now: () => t });
  assert.equal(b.tryTake(600), true);
  assert.equal(b.tryTake(600), true, '400 in hand: a datagram may run the bucket into debt');
  assert.equal(b.tryTake(900), true, 'owing 200, under one burst');
  assert.equal(b.tryTake(1), false, 'owing 1100: one burst or more');
  assert.equal(b.take(0), 1100, 'the refusal spent nothing, and a TCP reader waits out the whole debt');
  t += 200;
  assert.equal(b.tryTake(1), true, 'owing 900 once 200 ms refilled');
  assert.equal(b.take(0), 901);
  t += 60_000;
  assert.equal(b.tryTake(5000), true, 'a full bucket pays for a datagram larger than its burst');
  assert.equal(b.tryTake(1), false, 'owing 4000');
});

test('TokenBucket.refund: a datagram dropped after tryTake is as if never spent, up to the burst the refill stops at', () => {
  let t = 0;
  const b = new TokenBucket(1000, { burst: 1000, now: () => t });
  assert.equal(b.tryTake(1500), true);
  b.refund(1500);
  assert.equal(b.take(0), 0, 'owes nothing again');
  assert.equal(b.tryTake(1000), true);
  t += 500;
  b.refund(1000);
  assert.equal(b.take(1000), 0, 'full again: the 500 refilled meanwhile did not stack past the burst');
  assert.equal(b.take(1), 1, 'and not one byte more');
});

test("a reader's debt is owed in bytes: a rate raised or lifted while it waits shortens the wait under way", () => {
  let t = 0;
  const b = new TokenBucket(1000, { burst: 1000, now: () => t });
  assert.equal(b.take(3000), 2000, '2000 bytes of debt at 1000 B/s');
  const mark = b.paidAt();
  t += 500;
  assert.equal(b.msUntil(mark), 1500);
  b.retune(10_000);
  assert.equal(b.msUntil(mark), 150, 'the 1500 bytes still owed, at the new rate');
  t += 150;
  assert.equal(b.msUntil(mark), 0, 'paid');
  assert.equal(b.take(3000), 300, '3000 bytes of debt at 10 000 B/s');
  const owed = b.paidAt();
  b.retune(undefined);
  assert.equal(b.msUntil(owed), 0, 'no limit any more: nothing to wait out');
});

test("a changed rate retunes the user's one bucket: what it owes is paid at the new rate; no rate lifts it", () => {
  let t = 0;
  const b = new TokenBucket(1000, { burst: 1000, now: () => t });
  assert.equal(b.take(1500), 500, '500 bytes of debt at 1000 B/s');
  b.retune(250);
  assert.equal(b.rate, 250);
  assert.equal(b.take(0), 2000, 'the same debt at 250 B/s');
  b.retune(undefined);
  assert.equal(b.take(10_000_000), 0, 'no limit any more');
  t += 1;
  b.retune(1000);
  assert.equal(b.take(1000), 0, 'limited again: a full burst, no debt carried from before the lift');
  assert.equal(b.take(500), 500);

  const limits = new BandwidthLimits();
  const open = limits.acquire('alice', 1000);
  const next = limits.acquire('alice', 2000); // a connection on the reloaded config
  assert.equal(next.bucket, open.bucket, 'one bucket for both, not one per rate');
  assert.equal(open.bucket.rate, 2000);
  const bob = limits.acquire('bob', 300);
  limits.retune(new Map([['alice', { bandwidth: 500 }]]));
  assert.equal(open.bucket.rate, 500);
  assert.equal(bob.bucket.rate, 300, 'a user the reload removed keeps the limit their connections had');
  limits.retune(new Map([['alice', {}], ['bob', {}]]));
  assert.equal(open.bucket.take(10_000_000), 0, 'a limit removed is lifted');
  assert.equal(bob.bucket.take(10_000_000), 0);
});

/** sender → [a ⇒ b] → sink: `a` and `b` are the middle's two sockets, as in the relay. */
async function chain(t: { after: (fn: () => unknown) => void }): Promise<{ sender: Socket; a: Socket; b: Socket; received: () => number; digest: () => string; ended: Promise<unknown> }> {
  let got = 0;
  const hash = createHash('sha256');
  let ended!: Promise<unknown>;
  const sink = createServer((s) => {
    ended = once(s, 'end');
    s.on('data', (c: Buffer) => {
      got += c.length;
      hash.update(c);
    });
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  const middle = createServer({ pauseOnConnect: true });
  middle.listen(0, '127.0.0.1');
  await once(middle, 'listening');
  const accepted = once(middle, 'connection') as Promise<[Socket]>;
  const sender = connect({ host: '127.0.0.1', port: (middle.address() as { port: number }).port });
  const [a] = await accepted;
  const b = connect({ host: '127.0.0.1', port: (sink.address() as { port: number }).port });
  await once(b, 'connect');
  for (const s of [sender, a, b]) s.on('error', () => {});
  t.after(() => {
    for (const s of [sender, a, b]) s.destroy();
    sink.close();
    middle.close();
  });
  await new Promise((r) => setImmediate(r));
  return { sender, a, b, received: () => got, digest: () => hash.digest('hex'), ended: new Promise((r) => setImmediate(() => r(ended))).then((e) => e) };
}

/** Writes `total` pseudo-random bytes as fast as backpressure allows; `blocked` once write() said wait. */
function pump(s: Socket, total: number): { blocked: () => boolean; sent: Promise<string> } {
  let blocked = false;
  const hash = createHash('sha256');
  const sent = (async () => {
    for (let off = 0; off < total; off += CHUNK) {
      const c = Buffer.alloc(Math.min(CHUNK, total - off), off % 251);
      hash.update(c);
      if (!s.write(c)) {
        blocked = true;
        await once(s, 'drain');
      }
    }
    s.end();
    return hash.digest('hex');
  })();
  return { blocked: () => blocked, sent };
}

/** Waits until `count` stops moving for `quietMs` (bounded by `maxMs`); returns its value. */
async function settle(count: () => number, quietMs = 300, maxMs = 10_000): Promise<number> {
  let last = -1;
  let since = 0;
  for (let waited = 0; waited < maxMs; waited += 20) {
    const now = count();
    if (now !== last) {
      last = now;
      since = 0;
    } else if ((since += 20) >= quietMs) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return count();
}

test('a reader over budget is paused: the burst passes, the sender is backpressured, nothing piles up', async (t) => {
  const { sender, a, b, received, digest } = await chain(t);
  const bucket = new TokenBucket(1, { burst: 128 * KiB });
  a.pipe(b);
  const detach = limitReader(a, b, bucket);
  const total = 32 * 1024 * KiB;
  const p = pump(sender, total);

  const passed = await settle(received);
  assert.ok(passed >= 128 * KiB, `the burst passed (${passed})`);
  assert.ok(passed <= 128 * KiB + 3 * CHUNK, `then the flow stopped (${passed})`);
  assert.ok(p.blocked(), 'the stop reached the sender as backpressure');
  assert.ok(a.readableLength <= CHUNK, `the paused reader holds at most one read (${a.readableLength})`);
  assert.ok(b.writableLength <= 2 * CHUNK, `the writer holds no more than a chunk or two (${b.writableLength})`);

  detach();
  const sentDigest = await p.sent;
  assert.equal(await settle(received, 300, 30_000), total, 'detached, everything arrives');
  assert.equal(digest(), sentDigest);
});

test("one user's connections share one bucket, both directions; another user has its own", async (t) => {
  const limits = new BandwidthLimits();
  const one = limits.acquire('alice', 1);
  const two = limits.acquire('alice', 1);
  const bob = limits.acquire('bob', 1);
  assert.equal(one.bucket, two.bucket);
  assert.notEqual(one.bucket, bob.bucket);
  assert.equal(limits.size, 2);

  // Connection 1 carries alice's upload, connection 2 her download: both spend one budget.
  const up = await chain(t);
  const down = await chain(t);
  const other = await chain(t);
  const wire = (c: typeof up, bucket: TokenBucket): void => {
    c.a.pipe(c.b);
    limitReader(c.a, c.b, bucket);
    pump(c.sender, 8 * 1024 * KiB);
  };
  wire(up, one.bucket);
  wire(down, two.bucket);
  wire(other, bob.bucket);
  const alice = await settle(() => up.received() + down.received());
  const burst = one.bucket.burst;
  assert.ok(alice <= burst + 4 * CHUNK, `alice's two connections together stay within one budget (${alice})`);
  assert.ok((await settle(other.received)) >= burst, 'bob got his whole burst regardless');

  one.release();
  one.release(); // idempotent
  assert.equal(limits.size, 2, 'alice still has a connection');
  two.release();
  bob.release();
  assert.equal(limits.size, 2, 'spent buckets outlive their connections while they refill');
  assert.equal(limits.acquire('alice', 1).bucket, one.bucket, "a later connection goes on with what alice's last one owed");
});

test("a user's bucket is forgotten once it has refilled after the last connection, and not before", async () => {
  const limits = new BandwidthLimits();
  const idle = limits.acquire('carol', 10 * 1024 * KiB);
  idle.release();
  assert.equal(limits.size, 0, 'a full bucket goes at once: a fresh one is the same');

  const spent = limits.acquire('alice', 10 * 1024 * KiB); // burst: one second's worth, 10 MiB
  spent.bucket.take(1024 * KiB); // 100 ms to refill
  spent.release();
  assert.equal(limits.size, 1, 'kept while it refills');
  const again = limits.acquire('alice', 10 * 1024 * KiB);
  assert.equal(again.bucket, spent.bucket, 'a connection meanwhile goes on with it');
  again.release();
  for (let waited = 0; waited < 3_000 && limits.size > 0; waited += 20) await new Promise((r) => setTimeout(r, 20));
  assert.equal(limits.size, 0, 'forgotten once full');
});

test("a bucket back from rest while another process relays its user has nothing to spend: that one spent the rate meanwhile", async () => {
  const limits = new BandwidthLimits();
  const rested = (user: string): void => {
    const held = limits.acquire(user, 10 * 1024 * KiB);
    held.bucket.take(10 * 1024 * KiB); // its whole burst: kept while it refills, a second
    held.release();
  };
  rested('alone');
  rested('shared');
  await new Promise((r) => setTimeout(r, 50)); // about 500 KiB refilled in each
  const alone = limits.acquire('alone', 10 * 1024 * KiB, 0);
  assert.equal(alone.bucket.take(100 * KiB), 0, 'relayed here only: what refilled is spent here');
  const shared = limits.acquire('shared', 10 * 1024 * KiB, 1);
  assert.ok(shared.bucket.take(100 * KiB) > 0, 'another process relays the user: nothing to spend here yet');
  alone.release();
  shared.release();
});

test('a paced flow completes intact: bytes are delayed, never dropped', async (t) => {
  const { sender, a, b, received, digest } = await chain(t);
  a.pipe(b);
  limitReader(a, b, new TokenBucket(4 * 1024 * KiB, { burst: 256 * KiB }));
  const total = 6 * 1024 * KiB;
  const sent = await pump(sender, total).sent;
  assert.equal(await settle(received, 500, 30_000), total);
  assert.equal(digest(), sent);
});

test("one user's connections share the bucket fairly: none is starved while the others flow", async (t) => {
  // Shares, not speeds: whatever the rate turns out to be, each of three equal readers
  // must get a fair part (a quarter at least, a third being even) of what the bucket let through.
  const bucket = new TokenBucket(512 * KiB, { burst: CHUNK });
  const chains = await Promise.all([chain(t), chain(t), chain(t)]);
  for (const c of chains) {
    c.a.pipe(c.b);
    t.after(limitReader(c.a, c.b, bucket));
    pump(c.sender, 64 * 1024 * KiB);
  }
  const total = (): number => chains.reduce((n, c) => n + c.received(), 0);
  for (let waited = 0; total() < 3 * 1024 * KiB && waited < 30_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  const got = chains.map((c) => c.received());
  const sum = got.reduce((n, x) => n + x, 0);
  assert.ok(sum >= 3 * 1024 * KiB, `the bucket let bytes through (${sum})`);
  for (const [i, n] of got.entries()) assert.ok(n >= sum / 4, `reader ${i} got its share: ${n} of ${sum} (${got.join(', ')})`);
});

test("bytes a client sent with its request and its FIN are charged to the user's bucket like every other byte", async (t) => {
  const { sender, a, b, received, ended } = await chain(t);
  // The client's request, payload and FIN all came before the relay: its stream has ended.
  sender.end();
  a.resume();
  await once(a, 'end');
  let now = 0;
  const bucket = new TokenBucket(1000, { burst: 1000, now: () => now });
  const early = Buffer.alloc(5000, 0x61);
  const done = relay(a, b, { idleTimeout: 0, early, throttle: bucket });
  await ended;
  assert.equal(received(), early.length, 'the early bytes went on, ahead of the FIN');
  assert.equal(bucket.take(0), 4000, 'and are owed: 4000 bytes past the burst at 1000 B/s');
  now += 10_000; // paid: the remote's end is no longer held back
  b.destroy();
  await done;
});
