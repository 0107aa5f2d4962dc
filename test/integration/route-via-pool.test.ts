// An upstream reached `via` a pool: GET /api/route names the member that hop would use, the
// one the access-log line of the next request names.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { adminClient } from '../helpers/admin.js';
import { socksConnect, startEchoServer, startGateway } from '../helpers/index.js';
import { startMicrosocks } from '../helpers/upstreams.js';

const TOKEN = 'admin-token-r0ute';

test('GET /api/route names the member of the pool an upstream is reached via, the one the request then gets', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const a = await startMicrosocks({ host: '127.0.0.71' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.72' });
  t.after(() => b.close());
  const exit = await startMicrosocks({ host: '127.0.0.73' });
  t.after(() => exit.close());
  const gw = await startGateway({
    metrics: { host: '127.0.0.1', port: 0, api_token: TOKEN },
    upstreams: {
      entry: { type: 'pool', strategy: 'round-robin', members: [`socks5://127.0.0.71:${a.port}`, `socks5://127.0.0.72:${b.port}`] },
      exit: { type: 'socks5', host: '127.0.0.73', port: exit.port, via: 'entry' },
    },
    default: 'exit',
  });
  t.after(() => gw.close());
  const api = adminClient(gw.gw, TOKEN);
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const route = await api.request('GET', `/api/route?host=127.0.0.1&port=${echo.port}`);
    assert.equal(route.status, 200, route.text);
    const said = route.json as { action: string; member?: string | null };
    assert.equal(said.action, 'exit');
    assert.match(String(said.member), /^socks5:\/\/127\.0\.0\.7[12]:\d+$/, route.text);
    const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000);
    socket.destroy();
    const line = await gw.accessLog((l) => l.dest === `127.0.0.1:${echo.port}` && l.member !== undefined && gw.logs.filter((x) => x.dest === l.dest).indexOf(l) === i, 5_000);
    assert.equal(line?.member, said.member, `request ${i}: the member route named`);
    seen.add(String(said.member));
  }
  assert.equal(seen.size, 2, 'round-robin: route follows the rotation');
  // UDP goes through no chained upstream (its datagrams are dropped): no hop, no member.
  const udp = (await api.request('GET', `/api/route?host=127.0.0.1&port=${echo.port}&command=udp`)).json as Record<string, unknown>;
  assert.equal('member' in udp, false, JSON.stringify(udp));
});
