import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { rawBind, readReply, resetDuringBindLookup } from '../helpers/bind.js';
import { startDnsServer } from '../helpers/dns-server.js';
import { readBytes, startGateway } from '../helpers/index.js';

/** True when nothing accepts on `port` (ECONNREFUSED). */
function refused(port: number): Promise<boolean> {
  const s = connect({ host: '127.0.0.1', port });
  return new Promise((resolve) => {
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
  });
}

for (const [how, extra] of [['end', 0], ['reset', 0], ['end', 8 * 1024], ['reset', 8 * 1024]] as const) {
  test(`BIND: a client that leaves (${how}, after ${extra} early bytes) while waiting for the peer frees the listener and logs at once`, async (t) => {
    const gw = await startGateway({ limits: { bind_timeout: '20s' } });
    t.after(() => gw.close());
    const { s } = await rawBind(gw.port);
    t.after(() => s.destroy());
    const first = await readReply(s);
    assert.equal(first?.rep, 0);
    if (extra > 0) await new Promise<void>((resolve) => s.write(Buffer.alloc(extra), () => resolve()));
    if (how === 'end') s.end();
    else s.resetAndDestroy();
    const line = await gw.accessLog((l) => l['cmd'] === 'bind', 2_000);
    assert.ok(line, 'the session ended without waiting for bind_timeout');
    // A reset says so as a FIN does: the line must not read as a BIND that ended well.
    assert.equal(line['error'], 'client left before the peer connected');
    assert.ok(await refused(first!.bound.port), 'the listener is closed');
  });
}

test('BIND: bytes the client sends while waiting reach the peer first, in order', async (t) => {
  const gw = await startGateway();
  t.after(() => gw.close());
  const { s } = await rawBind(gw.port, undefined, Buffer.from('a'));
  t.after(() => s.destroy());
  const first = await readReply(s);
  assert.equal(first?.rep, 0);
  s.write('b');
  await new Promise((r) => setTimeout(r, 50));
  s.write('c');
  const peer = connect({ host: '127.0.0.1', port: first!.bound.port });
  t.after(() => peer.destroy());
  const second = await readReply(s);
  assert.equal(second?.rep, 0);
  assert.equal((await readBytes(peer, 3)).toString(), 'abc');
  s.write('d');
  assert.equal((await readBytes(peer, 1)).toString(), 'd');
});

test('BIND for a name: a client that resets while its lookup waits on a silent DNS server is let go and logged at once, not at the DNS timeout', async (t) => {
  const dns = await startDnsServer({ 'peer.test': { silent: true } });
  t.after(() => dns.close());
  const gw = await startGateway({ dns: { servers: [`127.0.0.1:${dns.port}`], timeout: '30s' } });
  t.after(() => gw.close());
  assert.ok((await resetDuringBindLookup(t, gw.port, dns, 'peer.test')) > 0, 'the gateway asked the DNS server');
  // Held until the lookup gives up, the line came at the DNS timeout and blamed the resolver.
  const line = await gw.accessLog((l) => l['cmd'] === 'bind', 5_000);
  assert.ok(line, 'the session ended before the DNS timeout');
  assert.equal(line['error'], 'client closed the connection', JSON.stringify(line));
});
