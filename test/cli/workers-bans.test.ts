// `workers: 2`: bans given through the API, as the primary keeps them for replacement workers
// and gives them to one that came to serve while they were being asked; a reload through the
// API likewise.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { adminClient } from '../helpers/admin.js';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { BASE, BOOT_MS, started, tempConfig } from '../helpers/workers.js';

const SLOW_API_ANSWERS = new URL('../helpers/slow-api-answers.ts', import.meta.url).href;

/** Kills the first slot's worker and waits until the primary says it starts a replacement; the dead worker's line. */
async function killFirstWorker(gw: RunningGateway): Promise<Record<string, unknown>> {
  const first = await gw.waitFor((l) => l.msg === 'socksgate listening' && l.worker === 1);
  process.kill(first.pid as number, 'SIGKILL');
  await gw.waitFor((l) => l.role === 'primary' && l.msg === 'worker exited; starting a replacement', 30_000);
  return first;
}

/** The replacement of `first` came to serve before `what` was settled (at `settledAt`): the race under test happened. Its line. */
function servedBefore(gw: RunningGateway, first: Record<string, unknown>, settledAt: number, what: string): Record<string, unknown> {
  const replacement = gw.lines.find((l) => l.msg === 'socksgate listening' && l.pid !== first.pid && l.worker !== 2);
  assert.ok(replacement && (replacement.time as number) < settledAt, `the replacement served before ${what} was settled`);
  return replacement;
}

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

test('a ban given while a replacement worker comes to serve reaches it too', { timeout: 180_000 }, async (t) => {
  const TOKEN = 'cluster-ban-in-flight-token';
  const pool = 'upstreams:\n  crawl: { type: pool, strategy: round-robin, members: ["socks5://127.0.0.61:9", "socks5://127.0.0.62:9"] }\n';
  const path = await tempConfig(BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`) + pool);
  const gw = await startCliGateway(path, [], [SLOW_API_ANSWERS], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const api = adminClient((await started(gw)).admin, TOKEN);

  // The first slot's worker dies; while its replacement starts, a ban is asked of the other,
  // which answers late: the replacement comes to serve before the ban is settled.
  const first = await killFirstWorker(gw);
  const banned = await api.request('POST', `/api/upstreams/crawl/members/${encodeURIComponent('socks5://127.0.0.61:9')}/ban`, { body: { for: '10m' } });
  const settledAt = Date.now();
  assert.equal(banned.status, 200, banned.text);
  servedBefore(gw, first, settledAt, 'the ban');

  // Every worker holds the ban: the merged view shows it (a member is banned only where all hold it).
  let members: Upstreams['pools'][number]['members'] = [];
  // Each read waits for the late worker's answer: a few reads at most.
  for (const until = Date.now() + 30_000; ; ) {
    const view = await api.request('GET', '/api/upstreams');
    members = (view.json as Upstreams).pools.find((p) => p.name === 'crawl')!.members;
    if (view.headers.get('x-socksgate-workers') === '2/2' && members[0]!.banned_until !== null) break;
    assert.ok(Date.now() < until, `the ban reaches every worker: ${JSON.stringify(members)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
});

test('a POST /api/reload settled while a replacement worker comes to serve reaches it too', { timeout: 180_000 }, async (t) => {
  const TOKEN = 'cluster-reload-in-flight-token';
  const config = (action: string): string =>
    `${BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`)}rules:\n  - { name: r, domains: [example.com], action: ${action} }\n`;
  const path = await tempConfig(config('block'));
  const gw = await startCliGateway(path, [], [SLOW_API_ANSWERS], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const api = adminClient((await started(gw)).admin, TOKEN);
  const first = await killFirstWorker(gw);
  await writeFile(path, config('direct'));
  const reloaded = await api.request('POST', '/api/reload');
  const settledAt = Date.now();
  assert.equal(reloaded.status, 200, reloaded.text);
  const replacement = servedBefore(gw, first, settledAt, 'the reload');
  // It started from the config the workers ran then (block): it must reload too.
  const caughtUp = await gw.waitFor((l) => l.msg === 'configuration reloaded' && l.pid === replacement.pid, 30_000);
  assert.equal(caughtUp.result, 'ok');
});
