import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { rawBind, readReply } from '../helpers/bind.js';
import { closedWithin, readBytes, startGateway } from '../helpers/index.js';

const FIRST = Buffer.from([5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90]); // listening on 127.0.0.1:8080
const SECOND = Buffer.from([5, 0, 0, 1, 127, 0, 0, 3, 0x30, 0x39]); // peer 127.0.0.3:12345

/**
 * Test instrument (scripted SOCKS5 BIND upstream): no auth, the first reply at once, the second
 * (and what follows, FIN included) when told: the timing real servers do not let a test choose.
 */
async function startBindUpstream(): Promise<{ port: number; peer(bytes: Buffer, end: boolean): void; close(): Promise<void> }> {
  let control: Socket | undefined;
  const server = createServer((s) => {
    control = s;
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => void s.write(step++ === 0 ? Buffer.from([5, 0]) : FIRST));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as { port: number }).port,
    peer(bytes, end) {
      if (end) control?.end(bytes);
      else control?.write(bytes);
    },
    close: () =>
      new Promise((resolve) => {
        control?.destroy();
        server.close(() => resolve());
      }),
  };
}

for (const end of [false, true]) {
  test(`BIND through an upstream: bytes that come with its second reply reach the client${end ? ', and so does the end right behind them' : ''}`, async (t) => {
    const upstream = await startBindUpstream();
    t.after(() => upstream.close());
    const gw = await startGateway({
      upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
      rules: [{ name: 'bind-up', commands: ['bind'], action: 'up' }],
    });
    t.after(() => gw.close());
    const { s } = await rawBind(gw.port);
    t.after(() => s.destroy());
    assert.deepEqual(await readReply(s), { rep: 0, bound: { host: '127.0.0.1', port: 8080 } });
    upstream.peer(Buffer.concat([SECOND, Buffer.from('banner')]), end);
    assert.deepEqual(await readReply(s), { rep: 0, bound: { host: '127.0.0.3', port: 12345 } });
    assert.equal((await readBytes(s, 6)).toString(), 'banner');
    if (!end) return;
    assert.ok(await closedWithin(s), 'the peer\'s end is passed on');
    s.end();
    const line = await gw.accessLog((l) => l['cmd'] === 'bind');
    assert.equal(line?.['down'], 6);
    assert.equal(line?.['error'], undefined);
  });
}
