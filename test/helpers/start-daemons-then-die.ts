// Run as a child process by upstream-daemons.test.ts: starts a tinyproxy, a Dante and a squid
// with the suite's helpers, prints their ports, and is killed (SIGKILL) as the runner kills a
// test file that ran out of time: no t.after, no cleanup of any kind.
import { startDante, startSquid, startTinyproxy } from './upstreams.js';

const host = process.argv[2] ?? '127.0.0.233';
const started = [await startTinyproxy({ host }), await startDante({ host }), await startSquid({ host })];
process.stdout.write(`${JSON.stringify(started.map((u) => u.port))}\n`, () => process.kill(process.pid, 'SIGKILL'));
