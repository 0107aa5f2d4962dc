// Datagrams on the socket that talks to a SOCKS5 upstream's UDP relay: only the relay's
// count. The socket is bound before the ASSOCIATE (its address goes in the request) and
// connected to the relay only after the reply, so anything sent to it in between is queued.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { listenTracked } from '../helpers/servers.js';
import { closeDgram, udpLogLine, udpThroughUpstream } from '../helpers/udp.js';

/**
 * Test instrument (scripted SOCKS5 UDP upstream): its relay echoes every datagram; before it
 * answers an ASSOCIATE, a third party sends a well-formed frame to the address the request
 * named (the gateway's datagram socket), from another address than the relay's.
 */
async function startUpstreamWithIntruder(): Promise<{ port: number; close(): Promise<void> }> {
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
    s.on('data', (req) => {
      if (step++ === 0) return void s.write(Buffer.from([5, 0]));
      // VER CMD RSV ATYP(1) ADDR(4) PORT: where the gateway's datagrams will come from.
      const host = [...req.subarray(4, 8)].join('.');
      const port = req.readUInt16BE(8);
      const forged = Buffer.concat([Buffer.from([0, 0, 0, 1, 127, 0, 0, 1, 0x1e, 0x61]), Buffer.from('forged')]);
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      reply.writeUInt16BE(relay.address().port, 8);
      // Right behind the reply: the gateway reads both in one turn of its event loop.
      s.write(reply, () => intruder.send(forged, port, host));
    });
  });
  const listening = await listenTracked(tcp);
  return {
    port: listening.port,
    close: async () => {
      await listening.close();
      await closeDgram(relay);
      await closeDgram(intruder);
    },
  };
}

test("through a SOCKS5 upstream, a datagram from anyone but the upstream's relay never reaches the client", async (t) => {
  const upstream = await startUpstreamWithIntruder();
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port);
  c.send({ host: '127.0.0.1', port: 9 }, 'mine');
  const answers: string[] = [];
  for (let a = await c.receive(2_000); a !== undefined; a = await c.receive(300)) answers.push(`${a.host}:${a.port} ${a.data.toString()}`);
  assert.deepEqual(answers, ['127.0.0.1:9 mine']);
  await c.close();
  const line = await udpLogLine(gw);
  assert.deepEqual(line?.['udp'], { sent: 1, received: 1, dropped: { unsolicited: 1 } });
});
