// Random and half-valid byte streams from many clients at once: every one is
// answered or closed, no session outlives its client, and the gateway keeps serving.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import fc from 'fast-check';
import { socksConnect, startEchoServer, startGateway } from '../helpers/index.js';

const CLIENTS = 300;

/** A prefix that gets the client past some of the handshake, then random bytes. */
const streams = (echoPort: number): fc.Arbitrary<Buffer[]> => {
  const port = Buffer.from([echoPort >> 8, echoPort & 0xff]);
  const prefix = fc.constantFrom(
    Buffer.alloc(0),
    Buffer.from([5, 1, 0]),
    Buffer.from([5, 1, 2]),
    Buffer.from([5, 2, 0, 2, 1, 1, 0x61, 1, 0x62]),
    Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]), port]),
    Buffer.from([5, 1, 0, 5, 3, 0, 1, 127, 0, 0, 1, 0, 0]),
  );
  const chunk = fc.uint8Array({ minLength: 0, maxLength: 300 }).map((a) => Buffer.from(a));
  return fc.tuple(prefix, fc.array(chunk, { maxLength: 4 })).map(([p, rest]) => [p, ...rest]);
};

/** A client's bound: far past the gateway's deadlines (500 ms handshake, 1 s idle, 1 s for a UDP association). */
const CLIENT_BOUND_MS = 5_000;

/** Plays one client to its close; true when it was the test's own bound that closed it, not the gateway. */
function play(port: number, chunks: Buffer[], endIt: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let cut = false;
    const bound = setTimeout(() => {
      cut = true;
      s.destroy();
    }, CLIENT_BOUND_MS);
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => {
      clearTimeout(bound);
      resolve(cut);
    });
    s.on('connect', () => {
      for (const c of chunks) if (c.length > 0) s.write(c);
      if (endIt) s.end();
    });
  });
}

test('300 clients of random bytes: all answered or closed, no session left, still serving', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({
    auth: { users: [{ username: 'a', password: 'b' }], allow_anonymous: true },
    limits: { handshake_timeout: '500ms', idle_timeout: '1s', udp_idle_timeout: '1s' },
  });
  t.after(() => gw.close());
  const samples = fc.sample(fc.tuple(streams(echo.port), fc.boolean()), { numRuns: CLIENTS, seed: 20261125 });
  const cut = await Promise.all(samples.map(([chunks, endIt]) => play(gw.port, chunks, endIt)));
  assert.equal(cut.filter(Boolean).length, 0, 'the gateway answered or closed every client by its own deadlines');

  for (let waited = 0; gw.gw.activeSessions > 0 && waited < 5_000; waited += 50) await new Promise((r) => setTimeout(r, 50));
  assert.equal(gw.gw.activeSessions, 0, 'every session ended with its client');

  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 2_000, { userId: 'a', password: 'b' });
  socket.write('alive');
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'alive');
  socket.destroy();
});
