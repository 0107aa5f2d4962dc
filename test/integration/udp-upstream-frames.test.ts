// A SOCKS5 upstream whose UDP relay answers with bad headers. The upstream is a test
// instrument written here (a scripted no-auth server for ASSOCIATE and a UDP socket), since
// no packaged server can be told to send malformed frames.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { listenTracked } from '../helpers/servers.js';
import { closeDgram, udpLogLine, udpThroughUpstream } from '../helpers/udp.js';

/** Headers no client can be told about: unknown ATYP, empty name, truncated. */
const BAD_HEADERS = [
  Buffer.from([0, 0, 0, 5, 1, 2, 3, 4, 0, 80]), // ATYP 5
  Buffer.from([0, 0, 0, 3, 0, 0, 80]), // a zero-length domain name
  Buffer.from([0, 0, 0]), // shorter than any header
  Buffer.from([0, 0, 0, 1, 127, 0]), // IPv4 cut short
];

interface BadRelay {
  port: number;
  /** Datagrams the relay received from the gateway. */
  received: number;
  close(): Promise<void>;
}

/**
 * Test instrument (scripted SOCKS5 UDP upstream): answers ASSOCIATE with its UDP socket as
 * BND; to every datagram it sends the bad headers above (which no real server sends), then
 * the datagram back as if the destination had echoed it.
 */
async function startBadUdpUpstream(): Promise<BadRelay> {
  const udp: DgramSocket = createSocket('udp4');
  udp.bind(0, '127.0.0.1');
  await once(udp, 'listening');
  const state = { received: 0 };
  udp.on('message', (msg, rinfo) => {
    state.received++;
    for (const bad of [...BAD_HEADERS, Buffer.concat([BAD_HEADERS[1]!, Buffer.from('payload')])]) udp.send(bad, rinfo.port, rinfo.address);
    udp.send(msg, rinfo.port, rinfo.address); // same header: "from" the destination it named
  });
  const tcp = createServer((s) => {
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => {
      // Greeting → no auth; request → success, BND = the UDP socket. The connection stays open.
      if (step++ === 0) return void s.write(Buffer.from([5, 0]));
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      reply.writeUInt16BE(udp.address().port, 8);
      s.write(reply);
    });
  });
  const listening = await listenTracked(tcp);
  return {
    port: listening.port,
    get received() {
      return state.received;
    },
    close: async () => {
      await listening.close();
      await closeDgram(udp);
    },
  };
}

test("an upstream's malformed UDP headers are dropped and counted; the association goes on", async (t) => {
  const upstream = await startBadUdpUpstream();
  t.after(() => upstream.close());
  const { gw, c } = await udpThroughUpstream(t, upstream.port);

  for (const text of ['first', 'second']) {
    c.send({ host: '127.0.0.1', port: 9 }, text);
    const answer = await c.receive(3_000);
    assert.equal(answer?.data.toString(), text);
    assert.deepEqual({ host: answer?.host, port: answer?.port }, { host: '127.0.0.1', port: 9 });
  }
  assert.equal(await c.receive(300), undefined, 'nothing but the two good answers reached the client');
  assert.equal(upstream.received, 2);
  await c.close();
  const line = await udpLogLine(gw);
  const bad = BAD_HEADERS.length + 1;
  assert.deepEqual(line?.['udp'], { sent: 2, received: 2, dropped: { malformed: 2 * bad } });
  const metrics = await gw.gw.metrics.registry.getSingleMetricAsString('socksgate_udp_datagrams_total');
  assert.match(metrics, new RegExp(`direction="down",result="malformed"} ${2 * bad}\\b`));
});
