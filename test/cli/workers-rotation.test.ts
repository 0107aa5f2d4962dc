// `workers: 2`: each worker keeps its own round-robin (PRODUCT.md allows it), but they start
// at different members, so the first requests spread. The primary hands connections to the
// workers in turn (NODE_CLUSTER_SCHED_POLICY=rr): two consecutive clients land on both.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { startCliGateway } from '../helpers/cli.js';
import { startEchoServer } from '../helpers/index.js';
import { echoOnce, socks5Raw } from '../helpers/raw-proxy.js';
import { startMicrosocks } from '../helpers/upstreams.js';
import { BASE, BOOT_MS, sessionEnds, started, tempConfig, waitUntil } from '../helpers/workers.js';

test('two workers send their first requests through a round-robin pool to different members', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const a = await startMicrosocks({ host: '127.0.0.61' });
  t.after(() => a.close());
  const b = await startMicrosocks({ host: '127.0.0.62' });
  t.after(() => b.close());
  const members = [`socks5://127.0.0.61:${a.port}`, `socks5://127.0.0.62:${b.port}`];
  const pool = `upstreams:\n  crawl: { type: pool, strategy: round-robin, members: ${JSON.stringify(members)} }\ndefault: crawl\n`;
  const gw = await startCliGateway(await tempConfig(BASE + pool), [], [], BOOT_MS, { env: { NODE_CLUSTER_SCHED_POLICY: 'rr' } });
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  for (let i = 0; i < 2; i++) {
    const c = await socks5Raw(gw.port, echo.port);
    assert.equal(c.code, 0, `request ${i + 1} through the pool`);
    assert.equal(await echoOnce(c.socket, `hello ${i}`), `hello ${i}`);
    c.socket.destroy();
    await waitUntil(`request ${i + 1} logged`, () => sessionEnds(gw).length === i + 1);
  }
  const lines = sessionEnds(gw);
  assert.equal(new Set(lines.map((l) => l['pid'])).size, 2, 'one request on each worker');
  assert.deepEqual(lines.map((l) => l['member']).sort(), members, 'each through a different member');
});
