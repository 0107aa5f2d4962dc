// `workers: 2`: real CLI processes (a primary and two node:cluster workers) sharing one
// listener; reloads, metrics, drain and replacement as a user sees them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get } from 'node:http';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { socksConnect, startEchoServer } from '../helpers/index.js';
import { socksUdpClient, startUdpEchoServer, type SocksUdpClient } from '../helpers/udp.js';

const BASE = 'listen: [{ host: 127.0.0.1, port: 0 }]\nworkers: 2\nmetrics: { host: 127.0.0.1, port: 0 }\nlimits: { drain_timeout: 5s }\n';
const BOOT_MS = 60_000; // three Node processes through tsx on a busy machine

async function tempConfig(text: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'socksgate-workers-')), 'socksgate.yaml');
  await writeFile(path, text);
  return path;
}

/** The primary's "workers listening" line: worker pids and the admin address. */
async function started(gw: RunningGateway): Promise<{ pids: number[]; admin: string }> {
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS);
  return { pids: line.pids as number[], admin: line.admin as string };
}

async function echoOnce(port: number, destPort: number, text: string): Promise<Socket> {
  const { socket } = await socksConnect(port, { host: '127.0.0.1', port: destPort }, 5_000);
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), text);
  return socket;
}

function scrape(admin: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(`http://${admin}/metrics`, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`status ${res.statusCode}: ${body}`))));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('metrics: no answer')));
    req.on('error', reject);
  });
}

/** Sum of every sample of `name` (all label sets) in Prometheus text. */
function total(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

async function waitUntil(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 25) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const sessionEnds = (gw: RunningGateway): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === 'session end');

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
  await waitUntil('a reload in each worker', () => new Set(gw.lines.filter((l) => l.msg === 'configuration reloaded').map((l) => l.pid)).size === 2);
  for (let i = 0; i < 4; i++) await assert.rejects(echoOnce(gw.port, echo.port, 'blocked'), /NotAllowed/, 'whichever worker takes it');

  // One connection stays open across SIGTERM: its worker drains it, then everyone exits.
  await writeFile(path, BASE);
  gw.child.kill('SIGHUP');
  await waitUntil('the second reload in each worker', () => gw.lines.filter((l) => l.msg === 'configuration reloaded').length === 4);
  const open = await echoOnce(gw.port, echo.port, 'before');
  gw.child.kill('SIGTERM');
  await gw.waitFor((l) => l.msg === 'draining open connections', 15_000);
  open.write('during the drain');
  const [chunk] = (await once(open, 'data')) as [Buffer];
  assert.equal(chunk.toString(), 'during the drain');
  open.end();
  const code = await Promise.race([gw.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
  assert.equal(code, 0);
  assert.equal(gw.lines.filter((l) => l.msg === 'stopped' && l.pid !== undefined).length, 2, 'both workers stopped');
});

test('--watch with two workers: an edit reloads both', { timeout: 120_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, ['--watch'], [], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  await writeFile(path, `${BASE}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  await waitUntil('a reload in each worker', () => new Set(gw.lines.filter((l) => l.msg === 'configuration reloaded').map((l) => l.pid)).size === 2);
  const reloaded = gw.lines.filter((l) => l.msg === 'configuration reloaded').map((l) => l.pid as number);
  assert.deepEqual([...new Set(reloaded)].sort(), [...pids].sort());
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
