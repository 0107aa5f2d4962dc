// `workers: 2`: real CLI processes (a primary and two node:cluster workers) sharing one
// listener; reloads, metrics, drain and replacement as a user sees them.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { createConnection, type Socket } from 'node:net';
import { adminClient } from '../helpers/admin.js';
import { startCliGateway } from '../helpers/cli.js';
import { closedPort, closedWithin, startEchoServer } from '../helpers/index.js';
import { socksUdpClient, startUdpEchoServer, type SocksUdpClient } from '../helpers/udp.js';
import { BASE, BOOT_MS, echoOnce, primaryLines, scrape, sessionEnds, started, tempConfig, total, waitUntil, workerLines } from '../helpers/workers.js';

const HANGUP_ON_CONFIG_READ = new URL('../helpers/hangup-on-config-read.ts', import.meta.url).href;

test('two workers serve one listener, a SIGHUP reloads both, /metrics sums both, SIGTERM drains and exits 0', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  assert.equal(new Set(pids).size, 2);

  const CONNECTIONS = 10;
  for (let i = 0; i < CONNECTIONS; i++) (await echoOnce(gw.port, echo.port, `hello ${i}`)).destroy();
  await waitUntil('every access-log line', () => sessionEnds(gw).length === CONNECTIONS);
  const served = new Set(sessionEnds(gw).map((l) => l.pid));
  assert.deepEqual([...served].sort(), [...pids].sort(), 'connections landed on both workers');

  const metrics = await scrape(admin);
  assert.equal(total(metrics, 'socksgate_connections_total'), CONNECTIONS, 'the sum over both workers');
  assert.ok(total(metrics, 'socksgate_bytes_total') >= 2 * CONNECTIONS * 'hello 0'.length);

  await writeFile(path, `${BASE}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  gw.child.kill('SIGHUP');
  await waitUntil('a reload in each worker', () => new Set(workerLines(gw, 'configuration reloaded').map((l) => l.pid)).size === 2);
  await waitUntil("the primary's line", () => primaryLines(gw, 'configuration reloaded').length === 1);
  for (let i = 0; i < 4; i++) await assert.rejects(echoOnce(gw.port, echo.port, 'blocked'), /NotAllowed/, 'whichever worker takes it');
  assert.equal(primaryLines(gw, 'configuration reloaded').length, 1, 'one line for the reload, not one per worker');
  assert.equal(primaryLines(gw, 'configuration reloaded')[0]!.trigger, 'SIGHUP');
  assert.ok(workerLines(gw, 'configuration reloaded').every((l) => l.level === 20), "a worker's own line is debug");

  // One connection stays open across SIGTERM: its worker drains it, then everyone exits.
  await writeFile(path, BASE);
  gw.child.kill('SIGHUP');
  await waitUntil('the second reload in each worker', () => workerLines(gw, 'configuration reloaded').length === 4);
  const open = await echoOnce(gw.port, echo.port, 'before');
  const probe = adminClient(admin);
  assert.equal((await probe.request('GET', '/readyz')).text, 'ready\n');
  gw.child.kill('SIGTERM');
  await gw.waitFor((l) => l.msg === 'draining open connections', 15_000);
  // A load balancer must stop sending here while the workers drain, as with one process.
  const readyz = await probe.request('GET', '/readyz');
  assert.deepEqual([readyz.status, readyz.text], [503, 'draining\n']);
  assert.equal((await probe.request('GET', '/healthz')).status, 200);
  open.write('during the drain');
  const [chunk] = (await once(open, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'during the drain');
  open.end();
  const code = await Promise.race([gw.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
  assert.equal(code, 0);
  assert.equal(gw.lines.filter((l) => l.msg === 'stopped' && l.pid !== undefined).length, 2, 'both workers stopped');
});

test('a SIGHUP that arrives while the primary reads its config reloads both workers once they serve', { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [HANGUP_ON_CONFIG_READ], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  await waitUntil('a reload in each worker', () => new Set(workerLines(gw, 'configuration reloaded').map((l) => l.pid)).size === 2);
  assert.match(String(workerLines(gw, 'configuration reloaded')[0]!.trigger), /^SIGHUP/);
  assert.equal(gw.child.exitCode, null);
});

test('--watch with two workers: an edit reloads both', { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, ['--watch'], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  await writeFile(path, `${BASE}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  await waitUntil('a reload in each worker', () => new Set(workerLines(gw, 'configuration reloaded').map((l) => l.pid)).size === 2);
  const reloaded = workerLines(gw, 'configuration reloaded').map((l) => l.pid as number);
  assert.deepEqual([...new Set(reloaded)].sort(), [...pids].sort());
  await waitUntil("the primary's line", () => primaryLines(gw, 'configuration reloaded').length === 1);
  assert.equal(primaryLines(gw, 'configuration reloaded')[0]!.trigger, 'watch');
});

test('a killed worker is replaced, and that is logged; the replacement serves', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);

  process.kill(pids[0]!, 'SIGKILL');
  const exited = await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  assert.equal(exited.pid, pids[0]);
  assert.equal(exited.signal, 'SIGKILL');
  const next = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS);
  for (let i = 0; i < 6; i++) (await echoOnce(gw.port, echo.port, `after ${i}`)).destroy();
  await waitUntil('every access-log line', () => sessionEnds(gw).length === 6);
  assert.ok(sessionEnds(gw).some((l) => l.pid === next.pid), 'the replacement takes connections');
  assert.ok(!sessionEnds(gw).some((l) => l.pid === pids[0]), 'the killed worker took none');
});

test('UDP associations stay with the worker that holds their TCP connection', { timeout: 120_000 }, async (t) => {
  const echo = await startUdpEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  // Four associations open at once. The kernel spreads accepts between the workers (SCHED_NONE),
  // not strictly in turn: a batch that all landed in one worker proves nothing about the other,
  // so another batch runs, up to five. Each relay socket must be its worker's own, or answers
  // land in the other worker.
  let spread: number[] = [];
  for (let batch = 0; batch < 5 && spread.length < 2; batch++) {
    const before = sessionEnds(gw).length;
    const clients: SocksUdpClient[] = [];
    for (let i = 0; i < 4; i++) clients.push(await socksUdpClient({ host: '127.0.0.1', port: gw.port }));
    t.after(() => Promise.all(clients.map((c) => c.close())));
    assert.equal(new Set(clients.map((c) => c.relay.port)).size, 4, 'a relay socket per association');
    for (let round = 0; round < 3; round++) {
      for (const [i, c] of clients.entries()) {
        c.send({ host: '127.0.0.1', port: echo.port }, `datagram ${batch}.${round}.${i}`);
        const answer = await c.receive(3_000);
        assert.equal(answer?.data.toString(), `datagram ${batch}.${round}.${i}`);
      }
    }
    await Promise.all(clients.map((c) => c.close()));
    await waitUntil('four association lines', () => sessionEnds(gw).length === before + 4);
    spread = [...new Set(sessionEnds(gw).slice(before).map((l) => Number(l.pid)))];
  }
  assert.deepEqual(spread.sort(), [...pids].sort(), 'one batch held associations in both workers at once');
});

test('/api with two workers: connections of both listed and killed by id, stats summed, a ban and a reload reach both', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const TOKEN = 'cluster-admin-token-one';
  const NEXT_TOKEN = 'cluster-admin-token-two';
  // Pool members nobody listens on (loopback port 9): only their ban state is looked at.
  const pool = 'upstreams:\n  crawl: { type: pool, strategy: round-robin, members: ["socks5://127.0.0.61:9", "socks5://127.0.0.62:9"] }\n';
  const config = (token: string, extra = ''): string => BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${token} }\nlimits`) + pool + extra;
  const path = await tempConfig(config(TOKEN));
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const api = adminClient(admin, TOKEN);
  assert.equal((await api.request('GET', '/api/connections', { token: null })).status, 401);
  const page = await api.request('GET', '/');
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
  // Outside /api the primary answers as one process does: a path first, then the method.
  assert.deepEqual([(await api.request('POST', '/nope')).status, (await api.request('POST', '/metrics')).status], [404, 405]);
  assert.equal((await api.request('HEAD', '/healthz')).status, 200);

  // Batches of held connections until both workers held some (the kernel spreads accepts,
  // not strictly in turn). Each batch is listed, counted and killed through the primary.
  const killedBy = new Set<number>();
  const seenIds = new Set<number>();
  for (let batch = 0; batch < 5 && killedBy.size < 2; batch++) {
    const held: Socket[] = [];
    for (let i = 0; i < 4; i++) held.push(await echoOnce(gw.port, echo.port, `held ${batch}.${i}`));
    t.after(() => held.forEach((s) => s.destroy()));
    const listed = await api.request('GET', '/api/connections');
    assert.equal(listed.status, 200, listed.text);
    const ids = (listed.json as Array<{ id: number; destination: string }>).map((c) => c.id);
    assert.equal(ids.length, 4, listed.text);
    assert.equal(new Set(ids).size, 4, `ids unique across the workers: ${listed.text}`);
    for (const id of ids) seenIds.add(id);
    const stats = await api.request('GET', '/api/stats');
    assert.equal((stats.json as { connections: { open: number } }).connections.open, 4, stats.text);
    const before = sessionEnds(gw).length;
    for (const id of ids) {
      const killed = await api.request('DELETE', `/api/connections/${id}`);
      assert.equal(killed.status, 200, killed.text);
      assert.deepEqual(killed.json, { id });
    }
    for (const s of held) assert.ok(await closedWithin(s, 5_000), 'a killed connection ends for its client');
    await waitUntil('four killed lines', () => sessionEnds(gw).length === before + 4);
    const lines = sessionEnds(gw).slice(before);
    assert.ok(lines.every((l) => l.error === 'killed'));
    for (const l of lines) killedBy.add(Number(l.pid));
    assert.equal((await api.request('DELETE', `/api/connections/${ids[0]}`)).status, 404, 'gone from every worker');
  }
  assert.deepEqual([...killedBy].sort(), [...pids].sort(), 'connections of both workers were listed and killed');

  // A ban shows in the merged view only once every worker holds it.
  const member = encodeURIComponent('socks5://127.0.0.61:9');
  const banned = await api.request('POST', `/api/upstreams/crawl/members/${member}/ban`, { body: { for: '10m' } });
  assert.equal(banned.status, 200, banned.text);
  type Upstreams = { pools: Array<{ name: string; members: Array<{ name: string; banned_until: string | null }> }> };
  const shown = (await api.request('GET', '/api/upstreams')).json as Upstreams;
  const bans = shown.pools.find((p) => p.name === 'crawl')!.members.map((m) => [m.name, m.banned_until !== null]);
  assert.deepEqual(bans, [
    ['socks5://127.0.0.61:9', true],
    ['socks5://127.0.0.62:9', false],
  ]);

  // A worker that dies is replaced: the replacement gets the running ban (the merged view
  // shows it again only once every worker holds it), and ids it hands out are new ones.
  process.kill(pids[0]!, 'SIGKILL');
  const replacement = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS);
  const bannedEverywhere = async (): Promise<boolean> => {
    const view = await api.request('GET', '/api/upstreams');
    return view.headers.get('x-socksgate-workers') === '2/2' && (view.json as Upstreams).pools[0]!.members[0]!.banned_until !== null;
  };
  for (let waited = 0; !(await bannedEverywhere()); waited += 100) {
    assert.ok(waited < 15_000, 'the replacement holds the ban');
    await new Promise((r) => setTimeout(r, 100));
  }
  let replacementServed = false;
  for (let batch = 0; batch < 5 && !replacementServed; batch++) {
    const held: Socket[] = [];
    for (let i = 0; i < 4; i++) held.push(await echoOnce(gw.port, echo.port, `after ${batch}.${i}`));
    t.after(() => held.forEach((s) => s.destroy()));
    const ids = ((await api.request('GET', '/api/connections')).json as Array<{ id: number }>).map((c) => c.id);
    assert.equal(ids.length, 4);
    for (const id of ids) assert.ok(!seenIds.has(id), `id ${id} handed out again`);
    const before = sessionEnds(gw).length;
    for (const id of ids) assert.equal((await api.request('DELETE', `/api/connections/${id}`)).status, 200);
    await waitUntil('four killed lines', () => sessionEnds(gw).length === before + 4);
    replacementServed = sessionEnds(gw)
      .slice(before)
      .some((l) => l.pid === replacement.pid);
  }
  assert.ok(replacementServed, 'the replacement took some of the connections');

  assert.equal((await api.request('DELETE', `/api/upstreams/crawl/members/${member}/ban`)).status, 200);
  const lifted = (await api.request('GET', '/api/upstreams')).json as Upstreams;
  assert.equal(lifted.pools[0]!.members[0]!.banned_until, null);

  // A reload the workers reject leaves them, and the token the primary checks, as they were.
  // The file also asks for three workers: the primary says so when it has read the file itself.
  const rejectedLines = (): number => workerLines(gw, 'reload rejected; keeping the running configuration').length;
  const loggedRejections = (): Array<Record<string, unknown>> => primaryLines(gw, 'reload rejected; keeping the running configuration');
  const primaryReads = (): number => gw.lines.filter((l) => l.msg === 'the number of workers changes after a restart').length;
  const rejectedConfig = config(NEXT_TOKEN, 'rules:\n  - { name: gone, domains_file: no-such-list.txt, action: block }\n');
  await writeFile(path, rejectedConfig.replace('workers: 2', 'workers: 3'));
  const rejected = await api.request('POST', '/api/reload');
  assert.equal(rejected.status, 422, rejected.text);
  await waitUntil('both workers logging the rejected reload', () => rejectedLines() === 2);
  // Logged once, with its reason, by the primary (after the workers' answers: its line can come after theirs).
  await waitUntil("the primary's line of the rejected reload", () => loggedRejections().length >= 1);
  assert.equal(loggedRejections().length, 1);
  assert.equal(loggedRejections()[0]!.trigger, 'api');
  assert.match(JSON.stringify(loggedRejections()[0]!.errors), /no-such-list\.txt/);
  assert.equal((await api.request('GET', '/api/stats')).status, 200, 'the running token still opens /api');
  assert.equal((await adminClient(admin, NEXT_TOKEN).request('GET', '/api/stats')).status, 401);
  // The same through SIGHUP, where the primary reads the file itself: the workers' config still rules.
  gw.child.kill('SIGHUP');
  await waitUntil('both workers rejecting the SIGHUP reload', () => rejectedLines() === 4);
  await waitUntil('the primary logging the SIGHUP reload', () => loggedRejections().length === 2);
  assert.equal(loggedRejections()[1]!.trigger, 'SIGHUP');
  assert.match(JSON.stringify(loggedRejections()[1]!.errors), /no-such-list\.txt/);
  await waitUntil("the primary's own reading of the file", () => primaryReads() === 1);
  assert.equal((await api.request('GET', '/api/stats')).status, 200, 'the running token still opens /api after SIGHUP');
  assert.equal((await adminClient(admin, NEXT_TOKEN).request('GET', '/api/stats')).status, 401);

  // A reload through the API: both workers reload, and the primary follows (the new token).
  await writeFile(path, config(NEXT_TOKEN));
  const reloaded = await api.request('POST', '/api/reload');
  assert.equal(reloaded.status, 200, reloaded.text);
  const byApi = (): number[] => workerLines(gw, 'configuration reloaded').filter((l) => l.trigger === 'api').map((l) => Number(l.pid));
  await waitUntil('a reload through the API in each worker', () => new Set(byApi()).size === 2);
  assert.deepEqual([...new Set(byApi())].sort(), [pids[1]!, replacement.pid as number].sort());
  const next = adminClient(admin, NEXT_TOKEN);
  for (let waited = 0; (await next.request('GET', '/api/stats')).status !== 200; waited += 50) {
    assert.ok(waited < 10_000, 'the primary took the new token');
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal((await api.request('GET', '/api/stats')).status, 401, 'the old token no longer opens /api');
});

test('a replacement worker runs the config the others run, not the file as it is now', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const probe = adminClient(admin);
  const known = new Set(pids);
  /** Kills `pid` and waits for its replacement to serve, or for the replacement to fail. */
  const replace = async (pid: number): Promise<number> => {
    const from = gw.lines.length;
    process.kill(pid, 'SIGKILL');
    const next = await gw.waitFor(
      (l) => gw.lines.indexOf(l) >= from && ((l.msg === 'socksgate listening' && !known.has(l.pid as number)) || (l.msg === 'worker exited; starting a replacement' && l.pid !== pid)),
      BOOT_MS,
    );
    assert.equal(next.msg, 'socksgate listening', `the replacement failed to start: ${JSON.stringify(next)}`);
    known.add(next.pid as number);
    return next.pid as number;
  };

  // A reload both workers reject leaves the bad file on disk: a replacement must not read it.
  await writeFile(path, `${BASE}rules:\n  - { name: broken, cidrs: [127.0.0.0/8], action: nowhere }\n`);
  gw.child.kill('SIGHUP');
  await waitUntil('both workers rejecting the reload', () => workerLines(gw, 'reload rejected; keeping the running configuration').length === 2);
  const first = await replace(pids[0]!);

  // An edit not reloaded yet (no SIGHUP) does not apply in one worker only.
  await writeFile(path, `${BASE}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  const second = await replace(pids[1]!);
  for (let waited = 0; (await probe.request('GET', '/readyz')).status !== 200; waited += 100) {
    assert.ok(waited < 15_000, 'ready again once both replacements serve');
    await new Promise((r) => setTimeout(r, 100));
  }
  const before = sessionEnds(gw).length;
  for (let i = 0; i < 8; i++) (await echoOnce(gw.port, echo.port, `unblocked ${i}`)).destroy();
  await waitUntil('every access-log line', () => sessionEnds(gw).length === before + 8);
  const servedBy = new Set(sessionEnds(gw).slice(before).map((l) => Number(l.pid)));
  assert.ok([...servedBy].every((p) => p === first || p === second), `served by the replacements: ${[...servedBy]}`);

  // The edit applies to both once reloaded.
  gw.child.kill('SIGHUP');
  await waitUntil('both replacements reloading', () => workerLines(gw, 'configuration reloaded').length === 2);
  for (let i = 0; i < 4; i++) await assert.rejects(echoOnce(gw.port, echo.port, 'blocked'), /NotAllowed/);
});

test('a replacement worker listens where the cluster started, in its log format, whatever a reload named since', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  const listening = workerLines(gw, 'socksgate listening')[0]!.listen;
  // Listen addresses and the log format apply after a restart: the primary says so, the workers keep theirs.
  const moved = await closedPort();
  await writeFile(path, BASE.replace('listen: [{ host: 127.0.0.1, port: 0 }]', `listen: [{ host: 127.0.0.1, port: ${moved} }]`).replace('log: { level: debug }', 'log: { level: debug, format: pretty }'));
  gw.child.kill('SIGHUP');
  await waitUntil('the reload', () => primaryLines(gw, 'configuration reloaded').length === 1);
  await waitUntil('both workers reloading', () => workerLines(gw, 'configuration reloaded').length === 2);

  const from = gw.lines.length;
  process.kill(pids[0]!, 'SIGKILL');
  const replacement = await gw.waitFor(
    (l) => gw.lines.indexOf(l) >= from && ((l.msg === 'socksgate listening' && !pids.includes(l.pid as number)) || String(l.raw ?? '').includes('socksgate listening')),
    BOOT_MS,
  );
  assert.equal(replacement.msg, 'socksgate listening', `the replacement logs JSON lines, as the cluster started: ${JSON.stringify(replacement)}`);
  assert.deepEqual(replacement.listen, listening, 'the replacement listens where the other worker does');
  const stray = createConnection({ host: '127.0.0.1', port: moved });
  const [err] = (await once(stray, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED', `nothing serves port ${moved} before a restart`);
  for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `served ${i}`)).destroy();
});

test('what a reload cannot change is said once, by the primary, not by every worker', { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  await started(gw);
  const [moved, admin] = [await closedPort(), await closedPort()];
  const next = BASE.replace('listen: [{ host: 127.0.0.1, port: 0 }]', `listen: [{ host: 127.0.0.1, port: ${moved} }]`)
    .replace('metrics: { host: 127.0.0.1, port: 0 }', `metrics: { host: 127.0.0.1, port: ${admin} }`)
    .replace('log: { level: debug }', 'log: { level: debug, format: pretty }');
  for (let round = 1; round <= 2; round++) {
    await writeFile(path, round === 1 ? next : `${next}# round ${round}\n`);
    gw.child.kill('SIGHUP');
    await waitUntil('both workers reloading', () => workerLines(gw, 'configuration reloaded').length === 2 * round);
    for (const msg of ['listen addresses changed: they apply after a restart', 'log format changed: it applies after a restart', 'admin listener address changed: it applies after a restart']) {
      await waitUntil(`the primary: ${msg}`, () => primaryLines(gw, msg).length === round);
      const warned = gw.lines.filter((l) => l.msg === msg && l.level === 40);
      assert.deepEqual(warned.map((l) => l.role), Array(round).fill('primary'), `${msg}: once a reload, by the primary`);
      assert.equal(workerLines(gw, msg).filter((l) => l.level === 20).length, 2 * round, `${msg}: each worker's own line is debug`);
    }
  }
});

test("the primary's own lines follow the log level of the config the workers run", { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { admin } = await started(gw);
  const quiet = BASE.replace('log: { level: debug }', 'log: { level: warn }');
  await writeFile(path, quiet);
  gw.child.kill('SIGHUP');
  // The reload that raised the level is still logged, once, at info: the line that says why the log went quiet.
  await waitUntil("the primary's line of the reload to warn", () => primaryLines(gw, 'configuration reloaded').length === 1);
  assert.match(await scrape(admin), /^socksgate_reloads_total\{result="ok"\} 1$/m);
  // A rejected reload is an error, still logged at warn.
  await writeFile(path, `${quiet}rules:\n  - { name: broken, cidrs: [127.0.0.0/8], action: nowhere }\n`);
  gw.child.kill('SIGHUP');
  await waitUntil("the primary's line of the rejected reload", () => primaryLines(gw, 'reload rejected; keeping the running configuration').length === 1);
  // Rejected: the level stays warn in the workers and in the primary.
  await writeFile(path, quiet);
  gw.child.kill('SIGHUP');
  const stoppedAt = gw.lines.length;
  gw.child.kill('SIGTERM');
  assert.equal(await gw.exited, 0);
  assert.deepEqual(
    gw.lines.slice(stoppedAt).filter((l) => l.role === 'primary' && Number(l.level) < 40).map((l) => l.msg),
    [],
    'no info line of the primary at level warn',
  );
});

test('a reload the workers do not all apply is logged once, and the worker that differs is named', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const TOKEN = 'cluster-differing-reload';
  const config = (extra = ''): string => BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`).replace('drain_timeout: 5s', 'drain_timeout: 30s') + extra;
  const path = await tempConfig(config());
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const api = adminClient(admin, TOKEN);
  // A connection held open in the first worker (slot 0 takes the odd ids) keeps it draining.
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  const inFirst = async (): Promise<boolean> => ((await api.request('GET', '/api/connections')).json as Array<{ id: number }>).some((c) => c.id % 2 === 1);
  for (let i = 0; i < 20 && !(await inFirst()); i++) held.push(await echoOnce(gw.port, echo.port, `held ${i}`));
  assert.ok(await inFirst(), 'a connection in the first worker');
  process.kill(pids[0]!, 'SIGTERM');
  await gw.waitFor((l) => l.msg === 'draining open connections' && l.pid === pids[0], 15_000);

  // The draining worker cannot apply a reload; the other one does.
  await writeFile(path, config('rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n'));
  gw.child.kill('SIGHUP');
  const DIFFERS = "a worker's reload outcome differs from the one logged";
  const differs = await gw.waitFor((l) => l.msg === DIFFERS, 15_000);
  const outcomes = gw.lines.filter((l) => l.role === 'primary' && (l.msg === 'configuration reloaded' || l.msg === 'reload rejected; keeping the running configuration'));
  assert.equal(outcomes.length, 1, 'one line for the reload');
  assert.notEqual(differs.result, outcomes[0]!.result);
  assert.ok(pids.includes(differs.pid as number), `the worker that differs: ${JSON.stringify(differs)}`);
  if (differs.result === 'rejected') assert.match(JSON.stringify(differs.errors), /stopping/);
});
