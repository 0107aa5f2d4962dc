// `workers: 2`: the primary's /metrics as Prometheus reads it across the workers' lives. A
// counter of the sum never goes down when a worker dies and is replaced (Prometheus would take
// it for a reset), a dead worker's gauges are gone with it, and one reload counts once.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { adminClient } from '../helpers/admin.js';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { countersDown } from '../helpers/metrics.js';
import { startEchoServer } from '../helpers/index.js';
import { startMicrosocks } from '../helpers/upstreams.js';
import { BASE, BOOT_MS, echoOnce, primaryLines, scrape, sessionEnds, started, tempConfig, total, waitUntil, workerLines } from '../helpers/workers.js';

const FAULT_ON_SIGUSR2 = new URL('../helpers/fault-on-sigusr2.ts', import.meta.url).href;

/** Counters every connection adds to (a histogram's count and sum are counters too). */
const PER_CONNECTION = [
  'socksgate_connections_total',
  'socksgate_bytes_total',
  'socksgate_rule_matches_total',
  'socksgate_outbound_requests_total',
  'socksgate_handshake_seconds_count',
  'socksgate_handshake_seconds_sum',
  'socksgate_connect_seconds_count',
  'socksgate_dns_cache_total',
];

/** `name{labels}`'s value in Prometheus text; NaN when there is no such sample. */
function sample(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? Number.NaN : Number(line.slice(series.length + 1));
}

const replacementOf = (gw: RunningGateway, pids: readonly number[]): Promise<Record<string, unknown>> =>
  gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS);

test('a worker killed and replaced: no counter of the sum goes down, its gauges go, and later counts add up', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const TOKEN = 'cluster-metrics-token';
  const gw = await startCliGateway(await tempConfig(BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`)), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const [victim, survivor] = pids as [number, number];
  const api = adminClient(admin, TOKEN);

  // Finished connections in both workers (the kernel spreads accepts, not strictly in turn).
  let finished = 0;
  for (let batch = 0; batch < 10 && new Set(sessionEnds(gw).map((l) => l.pid)).size < 2; batch++) {
    // By name: each one is a DNS cache miss or hit too, counted by the worker that served it.
    for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `finished ${batch}.${i}`, 'localhost')).destroy();
    finished += 4;
    await waitUntil('every access-log line', () => sessionEnds(gw).length === finished);
  }
  assert.equal(new Set(sessionEnds(gw).map((l) => l.pid)).size, 2, 'both workers finished connections');
  // A worker's connection ids are its slot's residue (mod 2): which worker holds an open one.
  const pidOfId = new Map(sessionEnds(gw).map((l) => [Number(l.sid) % 2, Number(l.pid)]));
  assert.equal(pidOfId.size, 2);

  // Connections held open in both workers: the victim's die with it.
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  const holders = async (): Promise<number[]> => ((await api.request('GET', '/api/connections')).json as Array<{ id: number }>).map((c) => pidOfId.get(c.id % 2)!);
  for (let batch = 0; batch < 10 && new Set(await holders()).size < 2; batch++) {
    for (let i = 0; i < 4; i++) held.push(await echoOnce(gw.port, echo.port, `held ${batch}.${i}`));
  }
  const heldBy = await holders();
  const survivorHeld = heldBy.filter((p) => p === survivor).length;
  assert.ok(survivorHeld > 0 && survivorHeld < held.length, `open connections in both workers: ${heldBy}`);

  const before = await scrape(admin);
  assert.equal(total(before, 'socksgate_connections_total'), finished);
  const lookups = (text: string): number => sample(text, 'socksgate_dns_cache_total{counter="hits"}') + sample(text, 'socksgate_dns_cache_total{counter="misses"}');
  assert.equal(lookups(before), finished, 'one lookup per connection by name');
  assert.equal(total(before, 'socksgate_connections_active'), held.length);
  process.kill(victim, 'SIGKILL');
  const exited = await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  assert.equal(exited.pid, victim);
  const after = await scrape(admin);
  // Nothing finished meanwhile: what the victim had counted is all still there.
  for (const name of PER_CONNECTION) assert.equal(total(after, name), total(before, name), `${name} after the kill`);
  const cpu = (text: string): number => total(text, 'socksgate_process_cpu_seconds_total');
  assert.ok(cpu(after) >= cpu(before), `CPU seconds: ${cpu(after)} after the kill, ${cpu(before)} before`);
  // Gauges are the live workers' only: the victim's open connections are not open any more.
  assert.equal(total(after, 'socksgate_connections_active'), survivorHeld);

  // The survivor's held connections finish; the replacement serves new ones; all add up.
  await replacementOf(gw, pids);
  for (const s of held) s.destroy();
  await waitUntil('the survivor finishing its open connections', () => sessionEnds(gw).length === finished + survivorHeld);
  let later = 0;
  for (let batch = 0; batch < 10 && !sessionEnds(gw).some((l) => !pids.includes(l.pid as number)); batch++) {
    for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `later ${batch}.${i}`)).destroy();
    later += 4;
    await waitUntil('every access-log line', () => sessionEnds(gw).length === finished + survivorHeld + later);
  }
  assert.ok(sessionEnds(gw).some((l) => !pids.includes(l.pid as number)), 'the replacement finished connections');
  const last = await scrape(admin);
  assert.equal(total(last, 'socksgate_connections_total'), finished + survivorHeld + later);
  assert.equal(total(last, 'socksgate_handshake_seconds_count'), total(before, 'socksgate_handshake_seconds_count') + later);
  for (const name of PER_CONNECTION) assert.ok(total(last, name) >= total(after, name), `${name} at the end`);
  assert.equal(total(last, 'socksgate_connections_active'), 0);
});

test('upstream attempts and failures are counters of the sum: each worker\'s added, a killed one\'s kept', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const up = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => up.close());
  const text = `${BASE}upstreams:\n  up: { type: socks5, host: 127.0.0.1, port: ${up.port} }\ndefault: up\n`;
  const path = await tempConfig(text);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const first = await scrape(admin);
  // rate() and increase() want counters: Grafana and promtool flag a gauge named like one.
  for (const name of ['socksgate_upstream_attempts_total', 'socksgate_upstream_failures_total']) {
    assert.match(first, new RegExp(`^# TYPE ${name} counter$`, 'm'));
  }

  let finished = 0;
  for (let batch = 0; batch < 10 && new Set(sessionEnds(gw).map((l) => l.pid)).size < 2; batch++) {
    for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `through up ${batch}.${i}`)).destroy();
    finished += 4;
    await waitUntil('every access-log line', () => sessionEnds(gw).length === finished);
  }
  assert.equal(new Set(sessionEnds(gw).map((l) => l.pid)).size, 2, 'both workers went through the upstream');
  const attempts = (text: string): number => sample(text, 'socksgate_upstream_attempts_total{upstream="up",pool=""}');
  const before = await scrape(admin);
  assert.equal(attempts(before), finished, 'the sum over the workers');
  assert.equal(sample(before, 'socksgate_upstream_failures_total{upstream="up",pool=""}'), 0);
  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  // What the killed worker counted stays: a sum that went down would read as a reset.
  assert.equal(attempts(await scrape(admin)), finished, 'after a worker is killed');

  // A reload that only adds a rule: the live workers' counts go on from where they were, so
  // the sum does not fall back to the killed worker's share.
  await replacementOf(gw, pids);
  const beforeReload = await scrape(admin);
  await writeFile(path, `${text}rules:\n  - { name: added, ports: [9], action: block }\n`);
  gw.child.kill('SIGHUP');
  await waitUntil('both live workers reloading', () => workerLines(gw, 'configuration reloaded').length === 2, 30_000);
  const afterReload = await scrape(admin);
  assert.deepEqual(countersDown(beforeReload, afterReload), [], 'no counter of the sum went down');
  assert.equal(attempts(afterReload), finished, 'after the reload');
});

test('a worker that stops, or dies of an unexpected error, sends what it counted since the last scrape', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE), [], [FAULT_ON_SIGUSR2], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  assert.equal(total(await scrape(admin), 'socksgate_connections_total'), 0);

  // Connections in both workers, none scraped: only their last words keep them in the sum.
  let finished = 0;
  for (let batch = 0; batch < 10 && new Set(sessionEnds(gw).map((l) => l.pid)).size < 2; batch++) {
    for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `unscraped ${batch}.${i}`)).destroy();
    finished += 4;
    await waitUntil('every access-log line', () => sessionEnds(gw).length === finished);
  }
  assert.equal(new Set(sessionEnds(gw).map((l) => l.pid)).size, 2, 'both workers finished connections');
  // One stops (it drains and exits 0, and is replaced), the other fails (it exits 70).
  process.kill(pids[0]!, 'SIGTERM');
  process.kill(pids[1]!, 'SIGUSR2');
  await waitUntil('both workers replaced', () => gw.lines.filter((l) => l.msg === 'worker exited; starting a replacement').length === 2, 30_000);
  const metrics = await scrape(admin);
  assert.equal(total(metrics, 'socksgate_connections_total'), finished);
  assert.equal(total(metrics, 'socksgate_unexpected_errors_total'), 1);
});

test('one reload counts once in the sum and is logged once, whichever way it comes and however many workers did it', { timeout: 180_000 }, async (t) => {
  const TOKEN = 'cluster-reload-token';
  const config = (extra = ''): string => BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`) + extra;
  const path = await tempConfig(config());
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { admin } = await started(gw);
  const api = adminClient(admin, TOKEN);
  const reloads = async (): Promise<[number, number]> => {
    const text = await scrape(admin);
    return [sample(text, 'socksgate_reloads_total{result="ok"}'), sample(text, 'socksgate_reloads_total{result="rejected"}')];
  };
  const logged = (msg: string): number => workerLines(gw, msg).length;
  /** Waits for both workers' own (debug) log lines, then for the count (a worker reports after it logs). */
  const settle = async (msg: string, lines: number, want: [number, number]): Promise<void> => {
    await waitUntil(`${lines} "${msg}" lines`, () => logged(msg) === lines);
    for (let waited = 0; ; waited += 100) {
      const now = await reloads();
      if (now[0] >= want[0] && now[1] >= want[1]) break;
      assert.ok(waited < 10_000, `reloads ${now} never reached ${want}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300)); // a second worker's count would be in by now
    assert.deepEqual(await reloads(), want);
  };
  /** The primary's outcome lines so far: one per reload, whatever the number of workers. */
  const outcomes = (): Array<[unknown, unknown, string]> =>
    gw.lines
      .filter((l) => l.role === 'primary' && (l.msg === 'configuration reloaded' || l.msg === 'reload rejected; keeping the running configuration'))
      .map((l) => [l.trigger, l.result, JSON.stringify(l.errors ?? null)]);
  assert.deepEqual(await reloads(), [0, 0]);

  await writeFile(path, config('rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n'));
  gw.child.kill('SIGHUP');
  await settle('configuration reloaded', 2, [1, 0]);

  await writeFile(path, config('rules:\n  - { name: gone, domains_file: no-such-list.txt, action: block }\n'));
  gw.child.kill('SIGHUP');
  await settle('reload rejected; keeping the running configuration', 2, [1, 1]);
  await waitUntil("the primary's line of the rejected reload", () => primaryLines(gw, 'reload rejected; keeping the running configuration').length >= 1);
  const [rejectedLine] = primaryLines(gw, 'reload rejected; keeping the running configuration');
  assert.equal(rejectedLine?.level, 50, "the primary logs the rejection, as an error");

  // Through the API: the answer is the workers' merged outcome, and the count matches it.
  const rejected = await api.request('POST', '/api/reload');
  assert.equal(rejected.status, 422, rejected.text);
  assert.deepEqual(await reloads(), [1, 2]);
  await writeFile(path, config());
  const ok = await api.request('POST', '/api/reload');
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(await reloads(), [2, 2]);
  await waitUntil('both workers logging each reload', () => logged('configuration reloaded') === 4);
  // The primary logs a reload once the workers have answered: its line can come after theirs.
  await waitUntil("the primary's four outcome lines", () => outcomes().length >= 4);
  const lines = outcomes();
  assert.deepEqual(
    lines.map(([trigger, result]) => [trigger, result]),
    [
      ['SIGHUP', 'ok'],
      ['SIGHUP', 'rejected'],
      ['api', 'rejected'],
      ['api', 'ok'],
    ],
  );
  for (const i of [1, 2]) assert.ok(lines[i]![2].includes('no-such-list.txt'), `the rejection says why: ${lines[i]![2]}`);
});

test("socksgate_process_start_time_seconds is there, as with one process: the primary's start", { timeout: 180_000 }, async (t) => {
  const before = Math.floor(Date.now() / 1000);
  const gw = await startCliGateway(await tempConfig(BASE), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { admin } = await started(gw);
  const text = await scrape(admin);
  // Each worker's is left out of the sum (a sum of start times means nothing); the gateway's
  // own process, the primary, started once, before its workers.
  const start = sample(text, 'socksgate_process_start_time_seconds');
  assert.ok(start >= before - 1 && start <= Date.now() / 1000, `start time ${start}, test began at ${before}`);
  assert.match(text, /^# TYPE socksgate_process_start_time_seconds gauge$/m);
});

test('a scrape while a worker does not answer (stopped, its event loop blocked) is a 503 that names it, logged as a warning', { timeout: 180_000 }, async (t) => {
  const gw = await startCliGateway(await tempConfig(BASE), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  process.kill(pids[0]!, 'SIGSTOP');
  t.after(() => process.kill(pids[0]!, 'SIGCONT'));
  const res = await fetch(`http://${admin}/metrics`, { signal: AbortSignal.timeout(15_000) });
  const body = await res.text();
  assert.equal(res.status, 503, body);
  assert.match(body, new RegExp(`worker 1 \\(pid ${pids[0]}\\) sent no metrics within 5 s`));
  await waitUntil('the warning', () => gw.lines.some((l) => l.role === 'primary' && l.msg === 'metrics not served'));
  const line = gw.lines.find((l) => l.msg === 'metrics not served')!;
  assert.equal(line.level, 40);
  assert.ok(!gw.lines.some((l) => l.msg === 'admin request failed'), 'not taken for a failure of the gateway');
  // Once it answers again, so does /metrics.
  process.kill(pids[0]!, 'SIGCONT');
  await scrape(admin);
});

test('/api/stats with a worker killed and replaced: its finished connections, bytes and rule counts stay in the totals, as in /metrics', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const TOKEN = 'cluster-stats-token-one';
  const gw = await startCliGateway(await tempConfig(BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`)), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids, admin } = await started(gw);
  const api = adminClient(admin, TOKEN);
  let finished = 0;
  for (let batch = 0; batch < 10 && new Set(sessionEnds(gw).map((l) => l.pid)).size < 2; batch++) {
    for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `finished ${batch}.${i}`)).destroy();
    finished += 4;
    await waitUntil('every access-log line', () => sessionEnds(gw).length === finished);
  }
  assert.equal(new Set(sessionEnds(gw).map((l) => l.pid)).size, 2, 'both workers finished connections');
  await scrape(admin); // the primary holds every worker's counters from here on
  type Stats = { connections: { finished: number }; bytes: { up: number; down: number }; rules: Array<{ rule: string; matches: number; up: number }> };
  const stats = async (): Promise<Stats> => (await api.request('GET', '/api/stats')).json as Stats;
  const before = await stats();
  assert.equal(before.connections.finished, finished);
  assert.ok(before.bytes.up > 0 && before.rules.length > 0, JSON.stringify(before));

  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement' && l.pid === pids[0], 15_000);
  const after = await stats();
  assert.deepEqual({ ...after, time: 0 }, { ...before, time: 0 }, 'nothing finished meanwhile: the totals are the same');
  await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS);
  assert.deepEqual({ ...(await stats()), time: 0 }, { ...before, time: 0 }, 'and the same once the replacement serves');
});
