// `workers: 2` when things go wrong: a worker that cannot start, the admin port taken, a
// scrape or a reload while a replacement starts, and a second stop signal.
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { get } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CLI, runCli, startCliGateway } from '../helpers/cli.js';
import { spawnTied } from '../helpers/spawn.js';
import { readBytes, socksConnect, startEchoServer } from '../helpers/index.js';
import { adminClient } from '../helpers/admin.js';
import { sessionEnds, waitUntil } from '../helpers/workers.js';

// Debug: a worker's own reload line (the primary logs each reload once, at info or error).
const BASE = 'listen: [{ host: 127.0.0.1, port: 0 }]\nmetrics: { host: 127.0.0.1, port: 0 }\nlimits: { drain_timeout: 30s }\nlog: { level: debug }\n';
const BOOT_MS = 60_000;
const EXIT_WORKER_ON_MARKER = new URL('../helpers/exit-worker-on-marker.ts', import.meta.url).href;
const STOP_ON_CONFIG_READ = new URL('../helpers/stop-on-config-read.ts', import.meta.url).href;

async function tempConfig(text: string): Promise<string> {
  const path = join(await tempDir('workers'), 'socksgate.yaml');
  await writeFile(path, text);
  return path;
}

/** status and body of GET http://admin/path; rejects when nothing answers within 15 s. */
function fetchText(admin: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(`http://${admin}${path}`, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.setTimeout(15_000, () => req.destroy(new Error(`${path}: no answer`)));
    req.on('error', reject);
  });
}

test('a worker that cannot start ends the start-up: the gateway exits 1 with the error', { timeout: 120_000 }, async () => {
  const dir = await tempDir('workers');
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, `${BASE}workers: 2\nrules:\n  - { name: listed, domains_file: ${join(dir, 'missing.txt')}, action: block }\n`);
  const r = await runCli(['--config', path], { timeoutMs: 90_000 });
  assert.equal(r.code, 1, `exit code (stderr: ${r.stderr.slice(0, 300)})`);
  assert.match(r.stderr, /missing\.txt/);
  assert.match(r.stdout, /a worker failed to start/);
});

test('with workers, an admin port already taken fails the start-up: exit 1', { timeout: 120_000 }, async () => {
  const holder = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  const taken = (holder.address() as { port: number }).port;
  try {
    const path = await tempConfig(`listen: [{ host: 127.0.0.1, port: 0 }]\nmetrics: { host: 127.0.0.1, port: ${taken} }\nworkers: 2\n`);
    const r = await runCli(['--config', path], { timeoutMs: 90_000 });
    assert.equal(r.code, 1, `exit code (stdout: ${r.stdout.slice(-300)})`);
    assert.match(r.stdout, /EADDRINUSE/);
  } finally {
    holder.close();
  }
});

test('/metrics while a worker is being replaced: the serving workers answer before it serves; state gauges are not summed', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir('workers');
  // A long list: a worker takes a while to start, and the scrape lands in that while.
  await writeFile(join(dir, 'list.txt'), Array.from({ length: 300_000 }, (_, i) => `host${i}.example`).join('\n'));
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, `${BASE}workers: 2\nupstreams: { up: { type: socks5, host: 127.0.0.1, port: 9 } }\nrules:\n  - { name: listed, domains_file: list.txt, action: block }\n`);
  const gw = await startCliGateway(path, [], [], BOOT_MS * 2);
  t.after(() => gw.child.kill('SIGKILL'));
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS * 2);
  const [pids, admin] = [line.pids as number[], line.admin as string];

  const before = await fetchText(admin, '/metrics');
  assert.equal(before.status, 200);
  // In rotation in every worker: 1 (as /api/upstreams says), not 2.
  assert.match(before.body, /^socksgate_upstream_healthy\{upstream="up",pool=""\} 1$/m);

  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  const during = await fetchText(admin, '/metrics');
  const answeredAt = gw.lines.length;
  assert.equal(during.status, 200, during.body.slice(0, 200));
  assert.match(during.body, /socksgate_connections_active/);
  // The scrape did not wait for the replacement: it was answered before the replacement served.
  const ready = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS * 2);
  assert.ok(gw.lines.indexOf(ready) >= answeredAt, 'the replacement was already serving when the scrape was answered');
});

test('a SIGHUP while a replacement worker starts reaches it once it serves', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir('workers');
  // A long list: a worker takes a while to start, and the SIGHUP lands in that while.
  await writeFile(join(dir, 'list.txt'), Array.from({ length: 300_000 }, (_, i) => `host${i}.example`).join('\n'));
  const path = join(dir, 'socksgate.yaml');
  const config = (action: string): string => `${BASE}workers: 2\nrules:\n  - { name: listed, domains_file: list.txt, action: ${action} }\n`;
  await writeFile(path, config('block'));
  const gw = await startCliGateway(path, [], [], BOOT_MS * 2);
  t.after(() => gw.child.kill('SIGKILL'));
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS * 2);
  const pids = line.pids as number[];

  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  // Forked at once (it lived long enough): starting now.
  const started = gw.lines.length;
  await writeFile(path, config('direct'));
  gw.child.kill('SIGHUP');
  const ready = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS * 2);
  assert.ok(
    !gw.lines.slice(0, started).some((l) => l.pid === ready.pid),
    'the replacement had not started when the SIGHUP came',
  );
  const reloaded = await gw.waitFor((l) => l.msg === 'configuration reloaded' && l.pid === ready.pid, 30_000);
  assert.equal(reloaded.result, 'ok');
});

test('a POST /api/reload while a replacement worker starts reaches it once it serves, and counts once', { timeout: 180_000 }, async (t) => {
  const dir = await tempDir('workers');
  // A long list: a worker takes a while to start, and the reload lands in that while.
  await writeFile(join(dir, 'list.txt'), Array.from({ length: 300_000 }, (_, i) => `host${i}.example`).join('\n'));
  const path = join(dir, 'socksgate.yaml');
  const TOKEN = 'cluster-api-reload-catch-up';
  const config = (action: string): string =>
    `${BASE.replace('port: 0 }\nlimits', `port: 0, api_token: ${TOKEN} }\nlimits`)}workers: 2\nrules:\n  - { name: listed, domains_file: list.txt, action: ${action} }\n`;
  await writeFile(path, config('block'));
  const gw = await startCliGateway(path, [], [], BOOT_MS * 2);
  t.after(() => gw.child.kill('SIGKILL'));
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS * 2);
  const [pids, admin] = [line.pids as number[], line.admin as string];

  process.kill(pids[0]!, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement', 15_000);
  // Forked at once (it lived long enough): starting now. The API asks the serving worker only.
  const started = gw.lines.length;
  await writeFile(path, config('direct'));
  const reloaded = await adminClient(admin, TOKEN).request('POST', '/api/reload');
  assert.equal(reloaded.status, 200, reloaded.text);
  assert.equal(reloaded.headers.get('x-socksgate-workers'), null);
  const ready = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), BOOT_MS * 2);
  assert.ok(!gw.lines.slice(0, started).some((l) => l.pid === ready.pid), 'the replacement had not started when the reload came');
  const caughtUp = await gw.waitFor((l) => l.msg === 'configuration reloaded' && l.pid === ready.pid, 30_000);
  assert.equal(caughtUp.result, 'ok');
  // One reload, logged and counted once.
  const metrics = await fetchText(admin, '/metrics');
  assert.match(metrics.body, /^socksgate_reloads_total\{result="ok"\} 1$/m);
  assert.equal(gw.lines.filter((l) => l.role === 'primary' && l.msg === 'configuration reloaded').length, 1);
});

test('/readyz is not ready while no worker serves, the pause before a restart included', { timeout: 180_000 }, async (t) => {
  const path = await tempConfig(`${BASE}workers: 2\n`);
  const gw = await startCliGateway(path, [], [EXIT_WORKER_ON_MARKER], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS);
  const [pids, admin] = [line.pids as number[], line.admin as string];
  assert.equal((await fetchText(admin, '/readyz')).status, 200);

  // From now on every worker exits as it starts, and one that dies that soon is restarted
  // after a pause: nothing listens while the workers are down, nor in those pauses.
  await writeFile(join(dirname(path), 'exit-workers'), '');
  for (const pid of pids) process.kill(pid, 'SIGKILL');
  await gw.waitFor((l) => l.msg === 'worker exited; starting a replacement' && l.code === 1, 30_000);
  const seen = new Set<string>();
  for (const until = Date.now() + 5_000; Date.now() < until; ) {
    const r = await fetchText(admin, '/readyz');
    seen.add(`${r.status} ${r.body.trim()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.deepEqual([...seen], ['503 starting']);
});

test('one process: a second stop signal of the other kind stops at once, and the connections it cuts are logged', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  // A connection held open keeps the drain going for up to 30 s.
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000);
  t.after(() => (socket as Socket).destroy());
  (socket as Socket).write('abc');
  assert.equal((await readBytes(socket as Socket, 3)).toString(), 'abc');
  gw.child.kill('SIGINT');
  await gw.waitFor((l) => l.msg === 'stopping', 10_000);
  gw.child.kill('SIGTERM');
  const code = await Promise.race([gw.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 10_000))]);
  assert.equal(code, 1);
  assert.ok(gw.lines.some((l) => l.msg === 'second signal: stopping at once'));
  await outputRead(gw.child);
  // The audit trail has the connection the stop cut, with its bytes and why it ended.
  const cut = sessionEnds(gw).filter((l) => l.dest === `127.0.0.1:${echo.port}`);
  assert.equal(cut.length, 1, 'one access-log line for the cut connection');
  assert.equal(cut[0]!.error, 'gateway stopped');
  assert.equal(cut[0]!.up, 3);
  assert.equal(cut[0]!.down, 3);
});

test('workers: a second stop signal stops the primary at once, says so, and takes the workers with it', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(`${BASE}workers: 2\n`), [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const pids = (await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS)).pids as number[];
  // A connection held open keeps its worker's drain going for up to 30 s.
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000);
  t.after(() => (socket as Socket).destroy());
  gw.child.kill('SIGINT');
  await gw.waitFor((l) => l.msg === 'draining open connections', 15_000);
  gw.child.kill('SIGTERM');
  const code = await Promise.race([gw.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 10_000))]);
  assert.equal(code, 1);
  assert.ok(gw.lines.some((l) => l.msg === 'second signal: stopping at once' && l.role === 'primary'));
  await outputRead(gw.child);
  // The worker that held the connection cut it and logged it before it exited.
  const cut = sessionEnds(gw).filter((l) => l.dest === `127.0.0.1:${echo.port}`);
  assert.equal(cut.length, 1, 'one access-log line for the cut connection');
  assert.equal(cut[0]!.error, 'gateway stopped');
  assert.ok(pids.includes(cut[0]!.pid as number), 'written by a worker');
  for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pids.filter(alive), [], 'no worker left behind');
});

test('workers: a stop signal sent to the whole process group (Ctrl-C) drains every worker; a second one stops at once', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const TOKEN = 'cluster-group-signal-token';
  const config = `listen: [{ host: 127.0.0.1, port: 0 }]\nmetrics: { host: 127.0.0.1, port: 0, api_token: ${TOKEN} }\nlimits: { drain_timeout: 30s }\nworkers: 2\n`;
  const gw = await startCliGateway(await tempConfig(config), [], [], BOOT_MS, { group: true });
  t.after(() => gw.child.kill('SIGKILL'));
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS);
  const [pids, admin] = [line.pids as number[], line.admin as string];
  const api = adminClient(admin, TOKEN);
  // Connections held open in both workers (a worker's ids are its slot's residue mod 2).
  const held: Socket[] = [];
  t.after(() => held.forEach((s) => s.destroy()));
  const residues = async (): Promise<Set<number>> => new Set(((await api.request('GET', '/api/connections')).json as Array<{ id: number }>).map((c) => c.id % 2));
  for (let batch = 0; batch < 10 && (await residues()).size < 2; batch++) {
    for (let i = 0; i < 4; i++) held.push((await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000)).socket);
  }
  assert.equal((await residues()).size, 2, 'open connections in both workers');

  // A terminal's Ctrl-C reaches the primary and every worker; the primary's SIGTERM follows.
  process.kill(-gw.child.pid!, 'SIGINT');
  await gw.waitFor((l) => l.msg === 'stopping: draining every worker', 15_000);
  await waitUntil('both workers draining', () => gw.lines.filter((l) => l.msg === 'draining open connections').length === 2);
  // A supervisor repeating its stop (each worker gets SIGTERM and SIGINT again, after the
  // group's SIGINT and the primary's SIGTERM): a worker drains on, whatever the count.
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGTERM'] as const) {
    for (const pid of pids) process.kill(pid, sig);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(pids.filter(alive), pids, 'every worker still running after four stop signals');
  for (const [i, s] of held.entries()) {
    const text = `still here ${i}`;
    if (!s.destroyed) s.write(text);
    assert.equal((await readBytes(s, text.length)).toString(), text, `held connection ${i} relayed during the drain`);
  }
  assert.ok(!gw.lines.some((l) => l.msg === 'second signal: stopping at once'), 'no worker took the primary\'s SIGTERM for a second signal');
  assert.equal(gw.child.exitCode, null);
  assert.equal((await fetchText(admin, '/readyz')).status, 503);

  // A second Ctrl-C: the primary stops at once and takes the workers with it.
  process.kill(-gw.child.pid!, 'SIGINT');
  const code = await Promise.race([gw.exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 10_000))]);
  assert.equal(code, 1);
  for (let i = 0; i < 100 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 50));
  assert.deepEqual(pids.filter(alive), [], 'no worker left behind');
});

/** Every line the gateway wrote has been read ('exit' can come before the last of its output). */
async function outputRead(child: ChildProcess): Promise<void> {
  const out = child.stdout!;
  if (out.readableEnded || out.destroyed) return;
  await Promise.race([once(out, 'close'), new Promise((r) => setTimeout(r, 5_000))]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('workers: a stop signal while the workers start drains them and exits 0, without saying they listen or opening the admin listener', { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(`${BASE}workers: 2\n`);
  // Not startCliGateway: it waits for a worker to say it listens, which a stopped start need not.
  const child = spawnTied(process.execPath, ['--import', 'tsx', '--import', STOP_ON_CONFIG_READ, CLI, '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 60_000))]);
  assert.equal(code, 0);
  const lines = out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  const primary = lines.filter((l) => l.role === 'primary').map((l) => l.msg);
  assert.deepEqual(primary, ['stopping: draining every worker', 'stopped'], JSON.stringify(lines));
});

test('workers: a worker that dies while draining is logged by the primary, with how it died; the others drain on', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(`${BASE}workers: 2\n`);
  const gw = await startCliGateway(path, [], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = (await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS)) as { pids?: number[] };
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 5_000);
  socket.on('error', () => {});
  t.after(() => socket.destroy());
  gw.child.kill('SIGTERM');
  // The worker holding the connection is the one still running: the OOM killer takes it.
  const holder = await gw.waitFor((l) => l.msg === 'draining open connections');
  process.kill(holder.pid as number, 'SIGKILL');
  assert.equal(await gw.exited, 0);
  const died = gw.lines.filter((l) => l.role === 'primary' && l.msg === 'worker exited while draining');
  assert.deepEqual(died.map((l) => [l.pid, l.signal]), [[holder.pid, 'SIGKILL']], JSON.stringify(gw.lines.filter((l) => l.role === 'primary')));
  assert.ok(pids?.includes(holder.pid as number));
});
