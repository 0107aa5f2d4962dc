// `workers: 2`: bans given through the API, as the primary keeps them for replacement workers.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { adminClient } from '../helpers/admin.js';
import { startCliGateway } from '../helpers/cli.js';
import { BASE, BOOT_MS, started, tempConfig } from '../helpers/workers.js';

type Upstreams = { pools: Array<{ name: string; members: Array<{ name: string; banned_until: string | null }> }> };

test('a ban lifted with the member spelled another way stays lifted in replacement workers', { timeout: 180_000 }, async (t) => {
  const TOKEN = 'cluster-ban-ledger-token';
  // Pool members nobody listens on (loopback port 9): only their ban state is looked at.
  const pool = 'upstreams:\n  crawl: { type: pool, strategy: round-robin, members: ["socks5://127.0.0.61:9", "socks5://127.0.0.62:9"] }\n';
  const path = await tempConfig(BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`) + pool);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const api = adminClient(admin, TOKEN);

  // Two spellings of one member in the path: every reserved character escaped, or only "/".
  const banned = await api.request('POST', `/api/upstreams/crawl/members/${encodeURIComponent('socks5://127.0.0.61:9')}/ban`, { body: { for: '10m' } });
  assert.equal(banned.status, 200, banned.text);
  const lifted = await api.request('DELETE', '/api/upstreams/%63rawl/members/socks5:%2F%2F127.0.0.61:9/ban');
  assert.equal(lifted.status, 200, lifted.text);
  assert.deepEqual(lifted.json, { pool: 'crawl', member: 'socks5://127.0.0.61:9', banned_until: null });

  // Both workers die and are replaced: neither replacement may be given the lifted ban.
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  const replaced = (): number => new Set(gw.lines.filter((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number)).map((l) => l.pid)).size;
  for (let waited = 0; replaced() < 2; waited += 100) {
    assert.ok(waited < BOOT_MS, 'two replacement workers');
    await new Promise((r) => setTimeout(r, 100));
  }
  // A replacement gets its bans as it becomes ready, ahead of any request asked of it later.
  let view = await api.request('GET', '/api/upstreams');
  for (let waited = 0; view.headers.get('x-socksgate-workers') !== '2/2'; waited += 100) {
    assert.ok(waited < 15_000, `both replacements serve: ${view.headers.get('x-socksgate-workers')}`);
    await new Promise((r) => setTimeout(r, 100));
    view = await api.request('GET', '/api/upstreams');
  }
  const members = (view.json as Upstreams).pools.find((p) => p.name === 'crawl')!.members;
  assert.deepEqual(members.map((m) => [m.name, m.banned_until]), [
    ['socks5://127.0.0.61:9', null],
    ['socks5://127.0.0.62:9', null],
  ]);
});
