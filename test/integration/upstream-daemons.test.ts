// The Debian daemons the suite runs as upstreams must not outlive a test file that is killed
// (a file timeout, ^C): they would keep their ports, and Dante its children, on a shared machine.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { once } from 'node:events';
import { startDante } from '../helpers/upstreams.js';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

const SCRIPT = fileURLToPath(new URL('../helpers/start-daemons-then-die.ts', import.meta.url));
const HOST = '127.0.0.233';

/** Whether something accepts on HOST:`port` now. */
function listening(port: number): Promise<boolean> {
  const s = connect(port, HOST);
  return new Promise<boolean>((resolve) => {
    s.once('connect', () => resolve(true));
    s.once('error', () => resolve(false));
  }).finally(() => s.destroy());
}

test('tinyproxy, Dante and squid started by a test file that is then killed stop with it', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    // The file's process dies of SIGKILL: execFile reports that as an error, with what it printed.
    execFile(process.execPath, ['--import', 'tsx', SCRIPT, HOST], { timeout: 30_000 }, (err, stdout) => {
      if (stdout.trim() !== '') resolve(stdout);
      else reject(err ?? new Error('no ports printed'));
    });
  });
  const ports = JSON.parse(out) as number[];
  assert.equal(ports.length, 3);
  const still: number[] = [];
  for (const port of ports) {
    // Each daemon is given up to 5 s to go (squid finishes its shutdown first).
    let up = true;
    for (let i = 0; i < 100 && up; i++) {
      up = await listening(port);
      if (up) await sleep(50);
    }
    if (up) still.push(port);
  }
  assert.deepEqual(still, [], `still listening on ${HOST}: ${still.join(', ')} (tinyproxy, Dante, squid in that order: ${ports.join(', ')})`);
});

test('a daemon restarted on its port waits out another socket holding that port for a moment', async (t) => {
  const first = await startDante({ host: HOST });
  await first.close();
  // What a port probe or a short-lived socket of a test file running alongside does in the gap.
  const holder = createServer().listen(first.port, HOST);
  await once(holder, 'listening');
  setTimeout(() => holder.close(), 400);
  const again = await startDante({ host: HOST, port: first.port });
  t.after(() => again.close());
  // Dante, not the holder, answers a SOCKS5 greeting there.
  const s = connect(again.port, HOST);
  t.after(() => s.destroy());
  s.write(Buffer.from([5, 1, 0]));
  const [answer] = (await once(s, 'data')) as [Buffer];
  assert.deepEqual([...answer], [5, 0]);
});
