// A SOCKS5 upstream that ends its UDP association (closes the control connection) while the
// client's association goes on. A test instrument written here: Dante's association outlives
// a killed server process for a while, so it cannot be made to end at a known moment.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { waitForLogMessage } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { closeDgram, udpLogLine, udpThroughUpstream } from '../helpers/udp.js';

/**
 * Test instrument (scripted SOCKS5 UDP upstream): answers every ASSOCIATE with its relay
 * socket, which echoes datagrams header and all; `endAssociations` closes every control
 * connection, as an upstream that restarts or times an association out does. `endAtOnce`:
 * every control connection is closed right after its reply, as a broken upstream does.
 */
async function startEndingUpstream(
  opts: { endAtOnce?: boolean } = {},
): Promise<{ port: number; associations: () => number; connections: () => number; endAssociations(): void; close(): Promise<void> }> {
  const relay: DgramSocket = createSocket('udp4');
  relay.bind(0, '127.0.0.1');
  await once(relay, 'listening');
  relay.on('message', (msg, rinfo) => relay.send(msg, rinfo.port, rinfo.address));
  const controls = new Set<Socket>();
  let associations = 0;
  let connections = 0;
  const tcp = createServer((s) => {
    connections++;
    s.on('error', () => {});
    controls.add(s);
    s.once('close', () => controls.delete(s));
    let step = 0;
    s.on('data', () => {
      if (step++ === 0) return void s.write(Buffer.from([5, 0]));
      associations++;
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      reply.writeUInt16BE(relay.address().port, 8);
      s.write(reply);
      if (opts.endAtOnce) s.end();
    });
  });
  const listening = await listenTracked(tcp);
  return {
    port: listening.port,
    associations: () => associations,
    connections: () => connections,
    endAssociations: () => {
      for (const s of controls) s.destroy();
    },
    close: async () => {
      await listening.close();
      await closeDgram(relay);
    },
  };
}

test('once the upstream has ended its UDP association, the very next datagram goes through a new one', async (t) => {
  const upstream = await startEndingUpstream();
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port, { logLevel: 'debug' });
  c.send({ host: '127.0.0.1', port: 9 }, 'before');
  assert.equal((await c.receive())?.data.toString(), 'before');
  upstream.endAssociations();
  // Not a sleep: on a loaded machine the close may take longer to be read, and the datagram would go first.
  assert.ok(await waitForLogMessage(gw.logs, 'upstream ended the UDP association'), 'the gateway saw its control connection close');
  c.send({ host: '127.0.0.1', port: 9 }, 'after');
  assert.equal((await c.receive())?.data.toString(), 'after', 'not lost to the association that had ended');
  assert.equal(upstream.associations(), 2);
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: 2, received: 2, dropped: {} });
});

test('an upstream that ends every UDP association at once is not reconnected to for every datagram', async (t) => {
  const upstream = await startEndingUpstream({ endAtOnce: true });
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port);
  const datagrams = 40;
  for (let i = 0; i < datagrams; i++) {
    c.send({ host: '127.0.0.1', port: 9 }, `d${i}`);
    // Pacing only, so that the gateway reads each close before the next datagram.
    await new Promise((r) => setTimeout(r, 10));
  }
  await c.close();
  const line = await udpLogLine(gw);
  const dropped = (line?.['udp'] as { dropped: Record<string, number> } | undefined)?.dropped ?? {};
  assert.ok(upstream.connections() <= 10, `${upstream.connections()} connections to the upstream for ${datagrams} datagrams`);
  // The datagrams held back meanwhile are dropped as those to an upstream that failed.
  assert.ok((dropped['upstream_failed'] ?? 0) >= datagrams / 2, JSON.stringify(dropped));
});

test('an upstream association that lived is replaced at once, each time it ends', async (t) => {
  const upstream = await startEndingUpstream();
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port, { logLevel: 'debug' });
  const ends = 2;
  const seenEnds = (): number => gw.logs.filter((l) => l.msg === 'upstream ended the UDP association').length;
  for (let i = 0; i <= ends; i++) {
    c.send({ host: '127.0.0.1', port: 9 }, `d${i}`);
    assert.equal((await c.receive())?.data.toString(), `d${i}`, `datagram ${i} went through a new association`);
    if (i === ends) break;
    // The association lives a while, as one that served its client does, before the upstream ends it.
    await new Promise((r) => setTimeout(r, 1_200));
    upstream.endAssociations();
    for (let n = 0; n < 150 && seenEnds() <= i; n++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(seenEnds(), i + 1, 'the gateway saw its control connection close');
  }
  assert.equal(upstream.associations(), ends + 1);
  await c.close();
  assert.deepEqual((await udpLogLine(gw))?.['udp'], { sent: ends + 1, received: ends + 1, dropped: {} });
});
