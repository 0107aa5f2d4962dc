// Bytes a client sends behind its request in the same write (a TLS ClientHello behind an HTTP
// CONNECT head, payload pipelined behind a SOCKS5 request) are relayed first, and then let go:
// the read that carried them is not held for the life of the tunnel, which would make every
// such tunnel cost up to a whole read (64 KiB) of memory while it idles.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { echoAndGateway, rawClient, readBytes } from '../helpers/index.js';

const EARLY = Buffer.alloc(16 * 1024, 0x61);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function collect(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/**
 * The read that brought the early bytes to each socket accepted on `port`, by the memory it
 * lives in (what any slice of it keeps alive). Smaller reads before it (a head's first piece,
 * the same piece put back for node's parser) are passed over.
 */
function watchEarlyReads(port: number): { reads: Array<WeakRef<ArrayBufferLike>>; stop(): void } {
  const reads: Array<WeakRef<ArrayBufferLike>> = [];
  const onAccept = (message: unknown): void => {
    const { socket } = message as { socket: Socket };
    if (socket.localPort !== port) return;
    const onRead = (chunk: Buffer): void => {
      if (chunk.length >= EARLY.length) reads.push(new WeakRef(chunk.buffer));
      else socket.prependOnceListener('data', onRead);
    };
    socket.prependOnceListener('data', onRead);
  };
  subscribe('net.server.socket', onAccept);
  return { reads, stop: () => unsubscribe('net.server.socket', onAccept) };
}

const CONNECT_HEAD = (port: number): Buffer => Buffer.from(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
const ESTABLISHED = 'HTTP/1.1 200 Connection established\r\n\r\n'.length;

/** How a client opens its tunnel: the writes before the one that carries the early bytes, and that one's start. */
const openings: Array<{ name: string; before: (port: number) => Buffer[]; with: (port: number) => Buffer; answer: number }> = [
  { name: 'an HTTP CONNECT head', before: () => [], with: CONNECT_HEAD, answer: ESTABLISHED },
  // The head split over two reads: node's http.Server reads it.
  { name: 'the end of an HTTP CONNECT head', before: (port) => [CONNECT_HEAD(port).subarray(0, 1)], with: (port) => CONNECT_HEAD(port).subarray(1), answer: ESTABLISHED },
  { name: 'a SOCKS5 greeting and request', before: () => [], with: (port) => Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]), answer: 2 + 10 },
];

for (const opening of openings) {
  test(`bytes sent with ${opening.name} in one write are relayed, and the read that carried them is not held while the tunnel stays open`, async (t) => {
    const gc = collect();
    const { echo, gw } = await echoAndGateway(t);
    const watch = watchEarlyReads(gw.port);
    t.after(() => watch.stop());
    const tunnels: Socket[] = [];
    t.after(() => tunnels.forEach((s) => s.destroy()));
    for (let i = 0; i < 3; i++) {
      const s = await rawClient(gw.port);
      tunnels.push(s);
      for (const piece of opening.before(echo.port)) {
        s.write(piece);
        await sleep(30); // a read of its own
      }
      s.write(Buffer.concat([opening.with(echo.port), EARLY]));
      const got = await readBytes(s, opening.answer + EARLY.length);
      assert.deepEqual(got.subarray(opening.answer), EARLY, 'the early bytes, relayed first');
    }
    watch.stop();
    assert.equal(watch.reads.length, 3);
    await sleep(50);
    gc();
    await sleep(10);
    gc();
    const held = watch.reads.filter((r) => r.deref() !== undefined).length;
    assert.equal(held, 0, `${held} of 3 reads with early bytes still held by open tunnels`);
    // The tunnels still work.
    tunnels[0]!.write('after');
    assert.equal((await readBytes(tunnels[0]!, 5)).toString(), 'after');
  });
}
