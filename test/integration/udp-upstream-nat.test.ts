// UDP through a SOCKS5 upstream from behind NAT (a container's bridge, a cloud network): the
// upstream sees our TCP and our datagrams from the NAT's address, and our datagrams from a
// port of the NAT's choosing.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { listenTracked } from '../helpers/servers.js';
import { startDante } from '../helpers/upstreams.js';
import { closeDgram, udpAssociation } from '../helpers/udp.js';

/**
 * Test instrument: a NAT in front of the SOCKS5 server at `upstream`, on `inside` (where the
 * gateway reaches it) with `outside` as its public address. TCP goes through from `outside`;
 * the ASSOCIATE reply's BND is rewritten to the NAT's own UDP socket, whose datagrams go on
 * to the server's relay from `outside` and a port of its own, and come back the same way.
 */
async function startNat(upstream: { host: string; port: number }, inside: string, outside: string): Promise<{ port: number; close(): Promise<void> }> {
  const front: DgramSocket = createSocket('udp4');
  front.bind(0, inside);
  await once(front, 'listening');
  const sockets: DgramSocket[] = [];
  let relay: { host: string; port: number } | undefined;
  const mapped = new Map<string, DgramSocket>();
  front.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let out = mapped.get(key);
    if (!out) {
      const o = createSocket('udp4');
      o.bind(0, outside); // another port than the gateway's: this NAT maps ports
      o.on('message', (answer) => front.send(answer, rinfo.port, rinfo.address));
      sockets.push(o);
      mapped.set(key, (out = o));
    }
    if (relay) out.send(msg, relay.port, relay.host);
  });
  const tcp = createServer((inner: Socket) => {
    inner.on('error', () => {});
    const outer = connect({ host: upstream.host, port: upstream.port, localAddress: outside });
    outer.on('error', () => inner.destroy());
    inner.on('close', () => outer.destroy());
    outer.on('close', () => inner.destroy());
    inner.pipe(outer);
    // The method choice (2 bytes) goes as it is; the reply after it, with an IPv4 BND (10 bytes), rewritten.
    let head = Buffer.alloc(0);
    let passed = 0;
    const onData = (chunk: Buffer): void => {
      if (passed < 2) {
        const n = Math.min(2 - passed, chunk.length);
        inner.write(chunk.subarray(0, n));
        passed += n;
        chunk = chunk.subarray(n);
      }
      head = Buffer.concat([head, chunk]);
      if (head.length < 10) return;
      outer.off('data', onData);
      const bnd = [...head.subarray(4, 8)].join('.');
      relay = { host: bnd === '0.0.0.0' ? upstream.host : bnd, port: head.readUInt16BE(8) };
      Buffer.from(inside.split('.').map(Number)).copy(head, 4);
      head.writeUInt16BE(front.address().port, 8);
      inner.write(head);
      outer.pipe(inner);
    };
    outer.on('data', onData);
  });
  const listening = await listenTracked(tcp, inside);
  return {
    port: listening.port,
    close: async () => {
      await listening.close();
      await closeDgram(front);
      for (const s of sockets) await closeDgram(s);
    },
  };
}

test('UDP through a SOCKS5 upstream (Dante) from behind NAT: the upstream takes our datagrams from the address it sees', async (t) => {
  const dante = await startDante({ host: '127.0.0.72' });
  t.after(() => dante.close());
  const nat = await startNat(dante, '127.0.0.70', '127.0.0.71');
  t.after(() => nat.close());
  const { echo, c } = await udpAssociation(t, {
    upstreams: { natted: { type: 'socks5', host: '127.0.0.70', port: nat.port } },
    rules: [{ name: 'udp-out', commands: ['udp'], action: 'natted' }],
  });
  for (let i = 0; i < 3; i++) {
    c.send({ host: '127.0.0.1', port: echo.port }, `behind nat ${i}`);
    const a = await c.receive(1_500);
    assert.equal(a?.data.toString(), `behind nat ${i}`, `answer ${i}`);
    assert.deepEqual([a?.host, a?.port], ['127.0.0.1', echo.port]);
  }
  for (const p of echo.peers) assert.match(p, /^127\.0\.0\.72:/, 'sent on by Dante');
});
