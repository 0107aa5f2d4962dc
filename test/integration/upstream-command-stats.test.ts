// BIND and UDP ASSOCIATE through an upstream a rule names on its own count in its stats as they
// do for a pool member (attempts, failures, active while open), and BIND in
// socksgate_outbound_requests_total and socksgate_connect_seconds as CONNECT does.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { socksBind } from '../helpers/bind.js';
import { startGateway, type TestGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { startDante } from '../helpers/upstreams.js';
import { socksUdpClient, startUdpEchoServer } from '../helpers/udp.js';

type Counts = { attempts: number; failures: number; active: number };

async function counts(gw: TestGateway, upstream: string): Promise<Counts> {
  const read = (f: string): Promise<number> => metricValue(gw.gw, `socksgate_upstream_${f}`, { upstream, pool: '' });
  return { attempts: await read('attempts_total'), failures: await read('failures_total'), active: await read('active') };
}

/** `want` once the counts read it (a close is seen a little later), else the last counts read. */
async function countsBecome(gw: TestGateway, upstream: string, want: Counts): Promise<Counts> {
  let got = await counts(gw, upstream);
  for (let waited = 0; waited < 5_000 && JSON.stringify(got) !== JSON.stringify(want); waited += 20) {
    await new Promise((r) => setTimeout(r, 20));
    got = await counts(gw, upstream);
  }
  return got;
}

for (const type of ['socks5', 'socks4'] as const) {
  test(`a BIND through a lone ${type} upstream counts as an attempt, is active until it ends, and is in socksgate_outbound_requests_total and socksgate_connect_seconds`, async (t) => {
    const dante = await startDante({ host: '127.0.0.9' });
    t.after(() => dante.close());
    const gw = await startGateway({
      upstreams: { dante: { type, host: dante.host, port: dante.port } },
      rules: [{ name: 'bind-out', commands: ['bind'], action: 'dante' }],
      metrics: { host: '127.0.0.1', port: 0 },
    });
    t.after(() => gw.close());
    const { bound, peer } = await socksBind(gw.port);
    assert.deepEqual(await counts(gw, 'dante'), { attempts: 1, failures: 0, active: 1 }, 'open while it waits for its peer');
    const p = connect({ host: bound.host, port: bound.port, localAddress: '127.0.0.1' });
    p.on('error', () => {});
    t.after(() => p.destroy());
    await once(p, 'connect');
    const { socket } = await peer;
    socket.write('to peer');
    assert.equal(((await once(p, 'data')) as [Buffer])[0].toString(), 'to peer');
    socket.destroy();
    p.destroy();
    assert.deepEqual(await countsBecome(gw, 'dante', { attempts: 1, failures: 0, active: 0 }), { attempts: 1, failures: 0, active: 0 });
    assert.equal(await metricValue(gw.gw, 'socksgate_outbound_requests_total', { outbound: 'dante', result: 'ok' }), 1);
    assert.match(await gw.gw.metrics.registry.metrics(), /^socksgate_connect_seconds_count\{outbound="dante"\} 1$/m);
  });
}

test('a BIND a lone upstream refuses counts as a failed attempt, as for a pool member', async (t) => {
  const gw = await startGateway({
    // Nothing listens there: the dial is refused.
    upstreams: { gone: { type: 'socks5', host: '127.0.0.1', port: 1 } },
    rules: [{ name: 'bind-out', commands: ['bind'], action: 'gone' }],
  });
  t.after(() => gw.close());
  await assert.rejects(socksBind(gw.port));
  assert.deepEqual(await countsBecome(gw, 'gone', { attempts: 1, failures: 1, active: 0 }), { attempts: 1, failures: 1, active: 0 });
  assert.equal(await metricValue(gw.gw, 'socksgate_outbound_requests_total', { outbound: 'gone', result: 'fail' }), 1);
});

test('a UDP association through a lone socks5 upstream counts as an attempt and is active until it ends', async (t) => {
  const dante = await startDante({ host: '127.0.0.5' });
  t.after(() => dante.close());
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ upstreams: { dante: { type: 'socks5', host: dante.host, port: dante.port } }, default: 'dante' });
  t.after(() => gw.close());
  const c = await socksUdpClient({ host: '127.0.0.1', port: gw.port });
  t.after(() => c.close());
  c.send({ host: '127.0.0.1', port: echo.port }, 'hop');
  assert.equal((await c.receive())?.data.toString(), 'hop');
  assert.deepEqual(await counts(gw, 'dante'), { attempts: 1, failures: 0, active: 1 });
  await c.close();
  assert.deepEqual(await countsBecome(gw, 'dante', { attempts: 1, failures: 0, active: 0 }), { attempts: 1, failures: 0, active: 0 });
});
