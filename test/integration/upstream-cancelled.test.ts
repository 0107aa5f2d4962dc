// A connect given up while an upstream is still being asked (the client left, or an operator
// killed the connection) is not that upstream's failure: not in /api/upstreams, not in /metrics.
import { test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { adminClient } from '../helpers/admin.js';
import { closedWithin, rawClient, startGateway } from '../helpers/index.js';
import { metricValue } from '../helpers/metrics.js';
import { listenTracked } from '../helpers/servers.js';

const TOKEN = 'admin-token-c4nc';

/** A proxy that takes connections and never says a word; `accepted` resolves at its first one. */
async function silentProxy(t: TestContext): Promise<{ port: number; accepted: Promise<unknown> }> {
  const srv = createServer((s) => s.on('error', () => {}));
  const accepted = once(srv, 'connection');
  const l = await listenTracked(srv, '127.0.0.1');
  t.after(() => l.close());
  return { port: l.port, accepted };
}

/** A SOCKS5 CONNECT to 127.0.0.1:`port` sent through the gateway; the socket is left waiting for its reply. */
async function connectRequest(t: TestContext, gwPort: number, port: number): Promise<Socket> {
  const s = await rawClient(gwPort);
  s.on('error', () => {});
  t.after(() => s.destroy());
  s.write(Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]));
  return s;
}

type Counts = { attempts: number; failures: number; active: number };

for (const how of ['the client leaves', 'the connection is killed'] as const) {
  test(`a connect cancelled while the upstream is asked (${how}) is neither an attempt nor a failure of it, lone upstream and pool member alike`, async (t) => {
    const lone = await silentProxy(t);
    const member = await silentProxy(t);
    const gw = await startGateway({
      metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN },
      upstreams: {
        lone: { type: 'socks5', host: '127.0.0.1', port: lone.port },
        crawl: { type: 'pool', strategy: 'round-robin', members: [`socks5://127.0.0.1:${member.port}`] },
      },
      limits: { connect_timeout: '30s' },
      rules: [
        { name: 'to-lone', ports: [9], action: 'lone' },
        { name: 'to-pool', ports: [19], action: 'crawl' },
      ],
    });
    t.after(() => gw.close());
    const api = adminClient(gw.gw, TOKEN);
    for (const [port, proxy, upstream] of [[9, lone, 'lone'], [19, member, `socks5://127.0.0.1:${member.port}`]] as const) {
      const s = await connectRequest(t, gw.port, port);
      await proxy.accepted;
      // Not counted while it is being asked: socksgate_upstream_attempts_total is a counter, and
      // one that took this attempt back once cancelled would go down, which Prometheus reads as a reset.
      assert.equal(await metricValue(gw.gw, 'socksgate_upstream_attempts_total', { upstream }), 0, `${upstream} while asked`);
      // A reset: a FIN alone is a half-close, which a client may send and still wait for its reply.
      if (how === 'the client leaves') s.resetAndDestroy();
      else {
        const list = (await api.request('GET', '/api/connections')).json as Array<{ id: number; destination: string }>;
        const conn = list.find((c) => c.destination === `127.0.0.1:${port}`);
        assert.ok(conn, JSON.stringify(list));
        assert.equal((await api.request('DELETE', `/api/connections/${conn.id}`)).status, 200);
        assert.ok(await closedWithin(s, 5_000), 'the killed client is closed');
      }
      assert.ok(await gw.accessLog((l) => l.dest === `127.0.0.1:${port}`, 5_000), 'the request has ended');
    }
    const body = (await api.request('GET', '/api/upstreams')).json as { upstreams: Array<Counts & { name: string }>; pools: Array<{ members: Counts[] }> };
    const pick = ({ attempts, failures, active }: Counts): Counts => ({ attempts, failures, active });
    assert.deepEqual(pick(body.upstreams.find((u) => u.name === 'lone')!), { attempts: 0, failures: 0, active: 0 });
    assert.deepEqual(pick(body.pools[0]!.members[0]!), { attempts: 0, failures: 0, active: 0 });
    for (const upstream of ['lone', `socks5://127.0.0.1:${member.port}`]) {
      assert.equal(await metricValue(gw.gw, 'socksgate_upstream_attempts_total', { upstream }), 0, upstream);
      assert.equal(await metricValue(gw.gw, 'socksgate_upstream_failures_total', { upstream }), 0, upstream);
    }
    for (const outbound of ['lone', 'crawl']) {
      assert.ok(Number.isNaN(await metricValue(gw.gw, 'socksgate_outbound_requests_total', { outbound, result: 'fail' })), outbound);
    }
  });
}
