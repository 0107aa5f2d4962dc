import { test, type TestContext } from '../helpers/test.js';
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
async function startBindUpstream(first = FIRST): Promise<{ port: number; peer(bytes: Buffer, end: boolean): void; close(): Promise<void> }> {
  let control: Socket | undefined;
  const server = createServer((s) => {
    control = s;
    s.on('error', () => {});
    let step = 0;
    s.on('data', () => void s.write(step++ === 0 ? Buffer.from([5, 0]) : first));
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

/** A gateway whose BIND goes to `upstream`, closed by `t.after`. */
async function gatewayTo(t: TestContext, upstream: { port: number }): Promise<Awaited<ReturnType<typeof startGateway>>> {
  const gw = await startGateway({
    upstreams: { up: { type: 'socks5', host: '127.0.0.1', port: upstream.port } },
    rules: [{ name: 'bind-up', commands: ['bind'], action: 'up' }],
  });
  t.after(() => gw.close());
  return gw;
}

/** A reply with address type 0x09, which RFC 1928 §6 does not have, and bytes behind it. */
const UNKNOWN_TYPE = Buffer.from([5, 0, 0, 9, 1, 2, 3, 4, 0, 80, 0x4f, 0x4b]);

test('BIND: an upstream first reply with an unknown address type is a failure (0x01), not a grant', async (t) => {
  const upstream = await startBindUpstream(UNKNOWN_TYPE);
  t.after(() => upstream.close());
  const gw = await gatewayTo(t, upstream);
  const { s } = await rawBind(gw.port);
  t.after(() => s.destroy());
  assert.equal((await readReply(s))?.rep, 0x01);
  assert.ok(await closedWithin(s));
});

test('BIND: an upstream second reply with an unknown address type is a failed second reply, its bytes never relayed', async (t) => {
  const upstream = await startBindUpstream();
  t.after(() => upstream.close());
  const gw = await gatewayTo(t, upstream);
  const { s } = await rawBind(gw.port);
  t.after(() => s.destroy());
  assert.equal((await readReply(s))?.rep, 0);
  upstream.peer(UNKNOWN_TYPE, false);
  assert.equal((await readReply(s))?.rep, 0x01);
  assert.ok(await closedWithin(s), 'closed after the failed second reply, nothing relayed');
});

for (const end of [false, true]) {
  test(`BIND through an upstream: bytes that come with its second reply reach the client${end ? ', and so does the end right behind them' : ''}`, async (t) => {
    const upstream = await startBindUpstream();
    t.after(() => upstream.close());
    const gw = await gatewayTo(t, upstream);
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
