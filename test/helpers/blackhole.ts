// A destination that never answers a connect, for dials that must be given up (timeout, abort).
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { requireFile, spawnTied } from './spawn.js';

type TestContext = { after(fn: () => unknown): void };

/**
 * A listener whose accept queue is full (backlog 0, one connection parked, never accepted):
 * Linux drops further SYNs, so connecting there hangs, like an address that blackholes traffic.
 * `port` 0 takes a free one; the port is returned.
 */
export async function blackhole(t: TestContext, host: string, port = 0): Promise<number> {
  const script = [
    'import socket, sys, time',
    `s = socket.socket(); s.bind((${JSON.stringify(host)}, ${port})); s.listen(0)`,
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const py = spawnTied(requireFile('/usr/bin/python3', 'python3'), ['-c', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  t.after(() => py.kill());
  const [chunk] = (await once(py.stdout!, 'data')) as [Buffer];
  const bound = Number(chunk.toString().trim());
  const filler = connect(bound, host);
  t.after(() => filler.destroy());
  await once(filler, 'connect');
  return bound;
}

/**
 * True once a socket on this machine is dialing `host:port` (SYN-SENT in `ss`): a dial into a
 * blackhole has begun and hangs there. Asks `ss` at most `tries` times, 20 ms apart.
 */
export async function dialing(host: string, port: number, tries = 500): Promise<boolean> {
  const ss = requireFile('/usr/bin/ss', 'iproute2');
  for (let i = 0; i < tries; i++) {
    const { stdout } = await promisify(execFile)(ss, ['-tnH', 'state', 'syn-sent', 'dst', host, 'dport', '=', `:${port}`], { encoding: 'utf8' });
    if (stdout.trim() !== '') return true;
    await sleep(20);
  }
  return false;
}
