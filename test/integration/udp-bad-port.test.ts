import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { pino } from 'pino';
import { openDirectUdp } from '../../src/outbound/udp-direct.js';
import { openSocks5Udp } from '../../src/outbound/socks5-udp.js';
import { resolverWithServer } from '../helpers/dns-server.js';
import { udpAssociation, udpLogLine } from '../helpers/udp.js';
import { listenTracked } from '../helpers/servers.js';

/** Test instrument (scripted SOCKS5 upstream): answers every ASSOCIATE with BND 127.0.0.1:`bndPort` (0 here, which no real server sends). */
async function startAssociateUpstream(bndPort: number): Promise<{ port: number; close(): Promise<void> }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => {
      const reply = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0, 0]);
      reply.writeUInt16BE(bndPort, 8);
      s.write(step++ === 0 ? Buffer.from([5, 0]) : reply);
    });
  });
  return listenTracked(server);
}

test('a datagram for DST.PORT 0 is dropped, the first one and the next, and the association goes on', async (t) => {
  const { echo, gw, c } = await udpAssociation(t);
  c.send({ host: '127.0.0.1', port: 0 }, 'zero');
  c.send({ host: '127.0.0.1', port: echo.port }, 'one');
  assert.equal((await c.receive())?.data.toString(), 'one');
  c.send({ host: '127.0.0.1', port: 0 }, 'zero again');
  c.send({ host: '127.0.0.1', port: echo.port }, 'two');
  assert.equal((await c.receive())?.data.toString(), 'two');
  await c.close();
  assert.deepEqual((await udpLogLine(gw, 2_000))?.['udp'], { sent: 2, received: 2, dropped: { bad_port: 2 } });
});

test('a direct UDP channel never throws from send, whatever the port', async (t) => {
  const { dns } = await resolverWithServer(t, {});
  const channel = openDirectUdp({ dns, log: pino({ level: 'silent' }) });
  const drops: string[] = [];
  channel.onDrop?.((reason) => drops.push(reason));
  try {
    channel.send({ host: '127.0.0.1', port: 0 }, Buffer.from('x'));
    assert.deepEqual(drops, ['send_error']);
  } finally {
    channel.close();
  }
});

test('an upstream whose ASSOCIATE reply names port 0 is a failed upstream, not a crash', async (t) => {
  const upstream = await startAssociateUpstream(0);
  t.after(() => upstream.close());
  const log = pino({ level: 'silent' });
  await assert.rejects(
    openSocks5Udp({ host: '127.0.0.1', port: upstream.port }, { signal: new AbortController().signal, log, sessionKey: 't' }, { connectTimeout: 2_000 }),
    (err: { code: string }) => err.code === 'GW_ERR_UPSTREAM_HANDSHAKE',
  );
  const { echo, gw, c } = await udpAssociation(t, {
    upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    rules: [{ name: 'udp-up', commands: ['udp'], action: 'up' }],
  });
  c.send({ host: '127.0.0.1', port: echo.port }, 'a');
  c.send({ host: '127.0.0.1', port: echo.port }, 'b');
  assert.equal(await c.receive(300), undefined);
  await c.close();
  const line = await udpLogLine(gw, 2_000);
  assert.deepEqual(line?.['udp'], { sent: 0, received: 0, dropped: { upstream_failed: 2 } });
  assert.equal(line?.['error'], 'upstream "up": UDP ASSOCIATE reply names port 0', 'the access line says why');
});
