// `workers: 2` replacing its workers: one that keeps dying as it starts (a list file gone since
// start-up, a broken volume) is restarted after pauses that grow, never in a loop that burns the
// CPU and the log forever, while the other serves on and a stop does not wait for a pause; one
// that dies while the others are still starting is replaced like any other.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { startCliGateway } from '../helpers/cli.js';
import { startEchoServer } from '../helpers/index.js';
import { adminClient } from '../helpers/admin.js';
import { BASE, BOOT_MS, echoOnce, primaryLines, started, tempConfig, waitUntil } from '../helpers/workers.js';

const EXIT_WORKER_ON_MARKER = new URL('../helpers/exit-worker-on-marker.ts', import.meta.url).href;
const DELAY_SECOND_WORKER = new URL('../helpers/delay-second-worker.ts', import.meta.url).href;
const REPLACED = 'worker exited; starting a replacement';

test('a worker that keeps failing to start is restarted after pauses that double, says so, and the other serves on', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [EXIT_WORKER_ON_MARKER], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);

  // From now on a worker exits as it starts: one slot loses its worker and cannot get it back.
  const marker = join(dirname(path), 'exit-workers');
  await writeFile(marker, '');
  process.kill(pids[0]!, 'SIGKILL');
  await waitUntil('four failed starts', () => primaryLines(gw, REPLACED).filter((l) => l.code === 1).length >= 4, 90_000);
  const exits = primaryLines(gw, REPLACED);
  const pauses = exits.map((l) => l.restartInMs);
  // The first death is replaced at once (a worker killed once is no loop), the next ones later and later.
  assert.deepEqual(pauses.slice(0, 5), [0, 1_000, 2_000, 4_000, 8_000].slice(0, pauses.length), JSON.stringify(exits));
  assert.deepEqual(exits.map((l) => l.exitsInARow), [1, 2, 3, 4, 5].slice(0, exits.length));
  // Each replacement was forked only once the pause announced before it had passed.
  for (let i = 1; i < exits.length; i++) {
    const gap = (exits[i]!.time as number) - (exits[i - 1]!.time as number);
    assert.ok(gap >= (pauses[i - 1] as number), `exit ${i} came ${gap} ms after the one before, which announced ${String(pauses[i - 1])} ms`);
  }
  // The worker that did not die serves throughout.
  (await echoOnce(gw.port, echo.port, 'still served')).destroy();

  // The cause gone, the slot comes back at its next try.
  await rm(marker);
  const back = await gw.waitFor((l) => l.msg === 'socksgate listening' && !pids.includes(l.pid as number), 60_000);
  // Once it has served a while, its slot's count starts again: killed, it is replaced at once.
  await new Promise((r) => setTimeout(r, 11_000));
  const before = primaryLines(gw, REPLACED).length;
  process.kill(back.pid as number, 'SIGKILL');
  await waitUntil('the exit of the one back', () => primaryLines(gw, REPLACED).length > before, 30_000);
  const steady = primaryLines(gw, REPLACED)[before]!;
  assert.equal(steady.restartInMs, 0, JSON.stringify(steady));
  assert.equal(steady.exitsInARow, undefined);
  gw.child.kill('SIGTERM');
  assert.equal(await gw.exited, 0);
});

test('a stop during the pause before a restart exits at once, without waiting for the pause', { timeout: 180_000 }, async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [EXIT_WORKER_ON_MARKER], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  const { pids } = await started(gw);
  await writeFile(join(dirname(path), 'exit-workers'), '');
  process.kill(pids[0]!, 'SIGKILL');
  // The fifth exit in a row announces a pause of 8 s: the stop comes in it, and the drain of
  // the one worker left, which holds no connection, takes far less than half of it.
  const fifth = await gw.waitFor((l) => l.role === 'primary' && l.msg === REPLACED && l.exitsInARow === 5, 60_000);
  const stoppedAt = Date.now();
  gw.child.kill('SIGTERM');
  assert.equal(await gw.exited, 0);
  assert.equal(fifth.restartInMs, 8_000);
  const took = Date.now() - stoppedAt;
  assert.ok(took < 4_000, `exited ${took} ms after the stop, in a pause of 8 s`);
  assert.ok(!gw.lines.some((l) => l.pid !== undefined && l.time !== undefined && (l.time as number) > stoppedAt && l.msg === 'socksgate listening'), 'no worker started after the stop');
});

test('a worker that dies after it served, while the others still start, is replaced: the gateway becomes ready', { timeout: 180_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE), [], [DELAY_SECOND_WORKER], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  // The first worker serves; the second is still starting when the first is killed (the OOM
  // killer, as both load their lists under one memory limit).
  const first = await gw.waitFor((l) => l.msg === 'socksgate listening', BOOT_MS);
  assert.ok(!gw.lines.some((l) => l.msg === 'workers listening'), 'the second worker still starts');
  process.kill(first.pid as number, 'SIGKILL');
  const replaced = await gw.waitFor((l) => l.role === 'primary' && l.msg === REPLACED, 30_000);
  assert.equal(replaced.pid, first.pid);
  const { pids, admin } = await started(gw);
  await waitUntil('two workers serving', () => gw.lines.filter((l) => l.msg === 'socksgate listening' && l.pid !== first.pid).length === 2, 60_000);
  assert.ok(!pids.includes(first.pid as number), `the workers listed as listening are alive: ${JSON.stringify(pids)}`);
  const api = adminClient(admin);
  let ready = await api.request('GET', '/readyz');
  for (let waited = 0; ready.status !== 200 && waited < 30_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    ready = await api.request('GET', '/readyz');
  }
  assert.equal(ready.status, 200, ready.text);
  // With `port: 0` the listener the first worker opened closed with it (no worker held it):
  // the workers now share the one the second opened.
  const listening = gw.lines.filter((l) => l.msg === 'socksgate listening' && l.pid !== first.pid).map((l) => l.listen);
  assert.equal(new Set(listening.map((l) => JSON.stringify(l))).size, 1, JSON.stringify(listening));
  const port = Number((listening[0] as string[])[0]!.split(':').pop());
  (await echoOnce(port, echo.port, 'served')).destroy();
  gw.child.kill('SIGTERM');
  assert.equal(await gw.exited, 0);
});
