// Datagrams on the socket that talks to a SOCKS5 upstream's UDP relay: only the relay's
// count. The socket is bound before the ASSOCIATE and connected to the relay only after the
// reply, so anything sent to it in between is queued.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { listenTracked } from '../helpers/servers.js';
import { closeDgram, ownUdpPorts, udpLogLine, udpThroughUpstream } from '../helpers/udp.js';

/**
 * Test instrument (scripted SOCKS5 UDP upstream): its relay echoes every datagram; right
 * behind its answer to an ASSOCIATE, a third party sends a well-formed frame to the gateway's
 * datagram socket (the one UDP socket of this process on 127.0.0.1 that was not there when
 * `known` was taken), from another address than the relay's.
 */
async function startUpstreamWithIntruder(): Promise<{ port: number; known: Set<number>; close(): Promise<void> }> {
  const relay: DgramSocket = createSocket('udp4');
  relay.bind(0, '127.0.0.1');
  await once(relay, 'listening');
  relay.on('message', (msg, rinfo) => relay.send(msg, rinfo.port, rinfo.address));
  const intruder: DgramSocket = createSocket('udp4');
  intruder.bind(0, '127.0.0.7');
  await once(intruder, 'listening');
  const tcp = createServer((s) => {
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => {
      if (step++ === 0) return void s.write(Buffer.from([5, 0]));
      const fresh = [...ownUdpPorts()].filter((p) => !state.known.has(p));
      assert.equal(fresh.length, 1, `the gateway's datagram socket alone is new: ${fresh.join(', ')}`);
      const forged = Buffer.concat([Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0x1e, 0x61]), Buffer.from('forged')]);
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      reply.writeUInt16BE(relay.address().port, 8);
      // Right behind the reply: the gateway reads both in one turn of its event loop.
      s.write(reply, () => intruder.send(forged, fresh[0]!, '127.0.0.1'));
    });
  });
  const listening = await listenTracked(tcp);
  const state = {
    port: listening.port,
    known: new Set<number>(),
    close: async () => {
      await listening.close();
      await closeDgram(relay);
      await closeDgram(intruder);
    },
  };
  return state;
}

test("through a SOCKS5 upstream, a datagram from anyone but the upstream's relay never reaches the client", async (t) => {
  const upstream = await startUpstreamWithIntruder();
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port);
  upstream.known = ownUdpPorts();
  c.send({ host: '127.0.0.1', port: 9 }, 'mine');
  const answers: string[] = [];
  for (let a = await c.receive(2_000); a !== undefined; a = await c.receive(300)) answers.push(`${a.host}:${a.port} ${a.data.toString()}`);
  assert.deepEqual(answers, ['127.0.0.1:9 mine']);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { unsolicited: 1 } });
});
