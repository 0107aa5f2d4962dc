// The relay's read path (forward.ts over read-into.ts) on real loopback sockets: it engages on
// the sockets the gateway has (accepted and connected TCP), moves bytes exactly and in order
// under backpressure and many relays at once (the shared read buffer is everyone's), passes
// ends on, and gives back every buffer it took.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { forward, ownBuffersOut } from '../../src/server/forward.js';
import { readInto } from '../../src/server/read-into.js';
import { relay, type RelayResult } from '../../src/server/relay.js';

/** A server whose accepted sockets arrive paused (as the gateway's do), and a connected client. */
async function tcpPair(t: { after(fn: () => unknown): void }): Promise<{ accepted: Socket; connected: Socket }> {
  const server: Server = createServer({ pauseOnConnect: true, allowHalfOpen: true });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const { port } = server.address() as { port: number };
  const connected = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
  const [accepted] = (await once(server, 'connection')) as [Socket];
  await once(connected, 'connect');
  connected.pause();
  t.after(() => {
    accepted.destroy();
    connected.destroy();
  });
  return { accepted, connected };
}

/**
 * client ⇄ [gateway side: accepted | relay | connected] ⇄ destination: two TCP pairs with the
 * relay between the gateway's two sockets.
 */
async function relayed(t: { after(fn: () => unknown): void }, early = Buffer.alloc(0)): Promise<{ client: Socket; dest: Socket; done: Promise<RelayResult> }> {
  const front = await tcpPair(t);
  const back = await tcpPair(t);
  const done = relay(front.accepted, back.connected, { idleTimeout: 0, early });
  return { client: front.connected, dest: back.accepted, done };
}

function digestOf(s: Socket, slow = false): Promise<{ bytes: number; sha: string }> {
  const h = createHash('sha256');
  let bytes = 0;
  return new Promise((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      h.update(c);
      bytes += c.length;
      if (slow) {
        // A reader that stops now and then: the writer behind it must wait, not pile up.
        s.pause();
        setTimeout(() => s.resume(), 1);
      }
    });
    s.once('end', () => resolve({ bytes, sha: h.digest('hex') }));
    s.once('error', reject);
    s.resume();
  });
}

/** Writes `chunks` honouring backpressure, then ends. */
async function sendAll(s: Socket, chunks: Buffer[]): Promise<void> {
  for (const c of chunks) if (!s.write(c)) await once(s, 'drain');
  s.end();
}

function payload(total: number, seed: number): Buffer[] {
  const out: Buffer[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    // Sizes from 1 byte to 300 KiB: reads that fill the shared buffer and ones that do not.
    const size = Math.min(left, 1 + ((seed * 7919 + i * 104_729) % (300 * 1024)));
    out.push(randomBytes(size));
    left -= size;
  }
  return out;
}

const sha = (chunks: Buffer[]): string => createHash('sha256').update(Buffer.concat(chunks)).digest('hex');

test('reads into supplied buffers on a socket a server accepted and on one it connected', async (t) => {
  const { accepted, connected } = await tcpPair(t);
  const buf = Buffer.alloc(16);
  const seen: string[] = [];
  const onRead = (n: number, b: Buffer): boolean => {
    assert.equal(b, buf, 'the supplied buffer, not a new one');
    seen.push(b.subarray(0, n).toString());
    return true;
  };
  assert.equal(readInto(accepted, buf, onRead, () => buf), true, 'accepted socket');
  accepted.resume();
  connected.write('hello');
  const deadline = Date.now() + 5_000;
  while (seen.join('') !== 'hello' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(seen.join(''), 'hello');
  assert.equal(accepted.bytesRead, 5, 'bytesRead still counts');
  const other = Buffer.alloc(16);
  assert.equal(readInto(connected, other, () => true, () => other), true, 'connected socket');
});

test('both directions at once, with a slow reader each way: every byte, in order, counted exactly', async (t) => {
  const { client, dest, done } = await relayed(t);
  const up = payload(6 * 1024 * 1024, 1);
  const down = payload(9 * 1024 * 1024, 2);
  const [atDest, atClient] = await Promise.all([digestOf(dest, true), digestOf(client, true), sendAll(client, up), sendAll(dest, down)]);
  assert.deepEqual(atDest, { bytes: 6 * 1024 * 1024, sha: sha(up) });
  assert.deepEqual(atClient, { bytes: 9 * 1024 * 1024, sha: sha(down) });
  client.destroy();
  dest.destroy();
  const result = await done;
  assert.equal(result.up, 6 * 1024 * 1024);
  assert.equal(result.down, 9 * 1024 * 1024);
  assert.equal(ownBuffersOut(), 0, 'every buffer given back');
});

test('twenty relays at once share the read buffer without mixing their bytes', async (t) => {
  const runs = await Promise.all(
    Array.from({ length: 20 }, async (_, i) => {
      const r = await relayed(t);
      const chunks = payload(512 * 1024 + i * 4099, i + 10);
      const [got] = await Promise.all([digestOf(r.dest, i % 3 === 0), sendAll(r.client, chunks)]);
      r.dest.end();
      await digestOf(r.client);
      const result = await r.done;
      return { got, want: { bytes: Buffer.concat(chunks).length, sha: sha(chunks) }, up: result.up };
    }),
  );
  for (const [i, r] of runs.entries()) {
    assert.deepEqual(r.got, r.want, `relay ${i}`);
    assert.equal(r.up, r.want.bytes, `relay ${i} count`);
  }
  assert.equal(ownBuffersOut(), 0);
});

test('early bytes go first, then what the stream held, then the reads; an end is passed on', async (t) => {
  const front = await tcpPair(t);
  const back = await tcpPair(t);
  front.connected.write('held-');
  // Let the bytes reach the paused socket's stream buffer before the relay starts.
  front.accepted.resume();
  await once(front.accepted, 'data').then(([c]) => front.accepted.unshift(c as Buffer));
  front.accepted.pause();
  const done = relay(front.accepted, back.connected, { idleTimeout: 0, early: Buffer.from('early-') });
  const got = digestOf(back.accepted);
  front.connected.end('read');
  const text = await new Promise<string>((resolve) => {
    let s = '';
    back.accepted.on('data', (c: Buffer) => (s += c.toString()));
    back.accepted.once('end', () => resolve(s));
  });
  await got;
  assert.equal(text, 'early-held-read');
  back.accepted.end();
  const result = await done;
  assert.equal(result.up, 'early-held-read'.length);
  assert.equal(result.down, 0);
});

test('a destination that resets mid-transfer ends the relay and gives the buffers back', async (t) => {
  const { client, dest, done } = await relayed(t);
  client.on('error', () => {});
  dest.on('error', () => {});
  void sendAll(client, payload(8 * 1024 * 1024, 3)).catch(() => {});
  await once(dest, 'readable');
  dest.resetAndDestroy();
  const result = await done;
  assert.ok(result.up < 8 * 1024 * 1024);
  assert.equal(ownBuffersOut(), 0);
});

test('forward on a stream that already saw its end hands over the held bytes and the end', async (t) => {
  const { accepted, connected } = await tcpPair(t);
  const back = await tcpPair(t);
  connected.end('all of it');
  accepted.resume();
  await once(accepted, 'end');
  // 'end' is out and nothing was consumed by a 'data' listener: nothing is held; the end is passed on.
  const release = forward(accepted, back.connected, Buffer.from('early'));
  const text = await new Promise<string>((resolve) => {
    let s = '';
    back.accepted.on('data', (c: Buffer) => (s += c.toString()));
    back.accepted.once('end', () => resolve(s));
    back.accepted.resume();
  });
  release();
  assert.equal(text, 'early');
});

test('a relay held up by its destination keeps its bytes while other relays read', async (t) => {
  // Small, spaced writes: each read is small and lands in the shared buffer. The destination
  // reads nothing until the relay has had to stop, so one write of those bytes is left waiting.
  const held = await relayed(t);
  held.dest.pause();
  const sent: Buffer[] = [];
  for (let i = 0; i < 100_000; i++) {
    const c = randomBytes(1000);
    sent.push(c);
    const more = held.client.write(c);
    await new Promise((r) => setImmediate(r));
    if (!more) break; // the relay stopped reading: its socket buffers are full both ways
  }
  assert.ok(sent.length < 100_000, 'the relay stopped reading');
  // Others read meanwhile, through the same shared buffer.
  const others = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => {
      const r = await relayed(t);
      const chunks = Array.from({ length: 200 }, () => randomBytes(700 + i));
      const [got] = await Promise.all([digestOf(r.dest), (async () => {
        for (const c of chunks) {
          r.client.write(c);
          await new Promise((res) => setImmediate(res));
        }
        r.client.end();
      })()]);
      r.dest.end();
      return got.sha === sha(chunks);
    }),
  );
  assert.deepEqual(others, [true, true, true, true]);
  const got = digestOf(held.dest);
  held.client.end();
  assert.equal((await got).sha, sha(sent), 'the held-up bytes arrive as sent');
});
