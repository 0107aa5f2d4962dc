// The gateway as a user runs it: a real process, reloaded by SIGHUP and by
// --watch, stopped by SIGTERM after draining.
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFileSync } from 'node:child_process';
import { open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createConnection, type Socket } from 'node:net';
import { startCliGateway } from '../helpers/cli.js';
import { closedWithin, socksConnect, startEchoServer } from '../helpers/index.js';
import { countersDown } from '../helpers/metrics.js';
import { startMicrosocks } from '../helpers/upstreams.js';
import { scrape } from '../helpers/workers.js';

const FAULT_ON_SIGUSR2 = new URL('../helpers/fault-on-sigusr2.ts', import.meta.url).href;
const HANGUP_ON_CONFIG_READ = new URL('../helpers/hangup-on-config-read.ts', import.meta.url).href;
const STOP_ON_CONFIG_READ = new URL('../helpers/stop-on-config-read.ts', import.meta.url).href;

const BASE = 'listen: [{ host: 127.0.0.1, port: 0 }]\nlimits: { drain_timeout: 1s }\n';
const BLOCK_LOOPBACK = `${BASE}rules:\n  - { name: no-loopback, cidrs: [127.0.0.0/8], action: block }\n`;

async function tempConfig(text: string): Promise<string> {
  const path = join(await tempDir('run'), 'socksgate.yaml');
  await writeFile(path, text);
  return path;
}

async function connectVia(port: number, destPort: number): Promise<Socket> {
  const { socket } = await socksConnect(port, { host: '127.0.0.1', port: destPort }, 3_000);
  return socket;
}

async function echoes(s: Socket, text: string): Promise<void> {
  s.write(text);
  const [chunk] = (await once(s, 'data')) as [Buffer];
  assert.equal(chunk.toString(), text);
}

test('SIGHUP applies a valid config to new requests, open ones continue; an invalid one is rejected', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));

  const open = await connectVia(gw.port, echo.port);
  t.after(() => open.destroy());
  await echoes(open, 'before');

  await writeFile(path, BLOCK_LOOPBACK);
  gw.child.kill('SIGHUP');
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await echoes(open, 'still open after reload');
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/);

  await writeFile(path, `${BASE}rules:\n  - { name: broken, action: nowhere }\n`);
  gw.child.kill('SIGHUP');
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration');
  assert.match(JSON.stringify(rejected.errors), /socksgate\.yaml:\d+:\d+: .*nowhere/);
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/, 'old rules stay');
  await echoes(open, 'and after a rejected reload');
});

test('a SIGHUP that arrives while the gateway is still reading its config reloads once it is up, instead of ending it', async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [HANGUP_ON_CONFIG_READ]);
  t.after(() => gw.child.kill('SIGKILL'));
  const reloaded = await gw.waitFor((l) => l.msg === 'configuration reloaded');
  assert.equal(reloaded.trigger, 'SIGHUP');
  assert.equal(gw.child.exitCode, null);
});

test('a SIGTERM that arrives while the gateway is still starting stops it once it is up, drained and exit 0, instead of being lost', async (t) => {
  // A process that is PID 1 in its container ignores a signal it has no handler for: one that
  // came before the gateway took it was lost, and `docker stop` waited for its SIGKILL.
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, [], [STOP_ON_CONFIG_READ]);
  t.after(() => gw.child.kill('SIGKILL'));
  const stopping = await gw.waitFor((l) => l.msg === 'stopping');
  assert.equal(stopping.signal, 'SIGTERM');
  const code = await Promise.race([gw.exited, new Promise<string>((r) => setTimeout(() => r('still running'), 30_000))]);
  assert.equal(code, 0);
});

test('a reload is held to the listeners running: it cannot drop auth, nor relax the egress default, by naming loopback', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const users = 'auth: { users: [{ username: bob, password: pw }] }\n';
  const path = await tempConfig(`listen: [{ host: 0.0.0.0, port: 0 }]\n${users}limits: { drain_timeout: 1s }\n`);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  const asBob = { userId: 'bob', password: 'pw' };
  await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, asBob), /NotAllowed/, 'loopback is denied by default on 0.0.0.0');

  // The file now says 127.0.0.1 without auth; the gateway still listens on 0.0.0.0.
  await writeFile(path, BASE);
  gw.child.kill('SIGHUP');
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration');
  assert.match(JSON.stringify(rejected.errors), /socksgate\.yaml:\d+:\d+: listen: refusing to serve without auth: the gateway listens on 0\.0\.0\.0/);
  await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000), 'no login, still refused');

  // With auth kept, the reload applies, and the egress default is still the one for 0.0.0.0.
  await writeFile(path, `${BASE}${users}rules: [{ name: added, domains: [full:blocked.test], action: block }]\n`);
  gw.child.kill('SIGHUP');
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await assert.rejects(socksConnect(gw.port, { host: 'blocked.test', port: 80 }, 3_000, asBob), /NotAllowed/, 'the reload applied');
  await assert.rejects(socksConnect(gw.port, { host: '127.0.0.1', port: echo.port }, 3_000, asBob), /NotAllowed/, 'loopback is still denied');
});

test('--watch reloads when the file changes, after a bad edit too, and across a rename', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  (await connectVia(gw.port, echo.port)).destroy();
  // A bad edit first: rejected, and the watch goes on.
  await writeFile(path, `${BASE}rules: [oops\n`);
  await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration');
  (await connectVia(gw.port, echo.port)).destroy();
  // Then the fix arrives the way editors and ConfigMaps write: a new file renamed over the old.
  await writeFile(`${path}.new`, BLOCK_LOOPBACK);
  await rename(`${path}.new`, path);
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/);
});

test('--watch: a deleted config is rejected, the gateway keeps serving, and the file written back is loaded', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  await rm(path);
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration');
  assert.match(JSON.stringify(rejected.errors), /ENOENT/);
  (await connectVia(gw.port, echo.port)).destroy();
  await writeFile(path, BLOCK_LOOPBACK);
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/);
});

test('--watch: a config emptied for rewriting (render > socksgate.yaml) is rejected, not run as the defaults without its rules', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BLOCK_LOOPBACK);
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  // The shell truncates the file at once; the program writing it may take seconds.
  await writeFile(path, '# rendered by deploy.sh\n');
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration' || l.msg === 'configuration reloaded');
  assert.equal(rejected.msg, 'reload rejected; keeping the running configuration');
  assert.match(JSON.stringify(rejected.errors), /socksgate\.yaml:1:1: .*empty/);
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/, 'the running rules stay');
  await writeFile(path, BASE);
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  (await connectVia(gw.port, echo.port)).destroy();
});

test('a storm of SIGHUPs while a reload runs gives one more reload, not one per signal', async (t) => {
  const path = await tempConfig(BASE);
  // A list big enough that each reload takes a while, as a real blocklist does.
  const list = join(path, '..', 'domains.txt');
  await writeFile(list, Array.from({ length: 100_000 }, (_, i) => `host${i}.example${i % 97}.com\n`).join(''));
  await writeFile(path, `${BASE}rules:\n  - { name: big, domains_file: domains.txt, action: block }\n`);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  const reloads = (): number => gw.lines.filter((l) => l.msg === 'configuration reloaded').length;
  gw.child.kill('SIGHUP');
  await gw.waitFor((l) => l.msg === 'configuration reloaded', 20_000).catch(() => undefined);
  const before = reloads();
  // A burst, all of it well within one reload (each signal is its own delivery to the process).
  for (let i = 0; i < 30; i++) {
    gw.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 1));
  }
  // Settled: no new line for a while.
  let seen = -1;
  while (seen !== reloads()) {
    seen = reloads();
    await new Promise((r) => setTimeout(r, 1_500));
  }
  const storm = reloads() - before;
  assert.ok(storm >= 1, 'the file was read again after the signals');
  assert.ok(storm <= 3, `${storm} reloads for 30 signals`);
});

test('--watch sees a change made while the gateway was still starting, before it said "listening"', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // Start-up reads the config, then blocks on a list file that is a FIFO until this test
  // writes it: the config is edited in between, after it was read and before "listening".
  const path = await tempConfig(`${BASE}rules:\n  - { name: held, domains_file: held.txt, action: block }\n`);
  const fifo = join(path, '..', 'held.txt');
  execFileSync('mkfifo', [fifo]);
  const starting = startCliGateway(path, ['--watch']);
  starting.catch(() => {}); // awaited below
  const writer = await open(fifo, 'w'); // returns once the gateway opened it for reading
  await writeFile(path, BLOCK_LOOPBACK);
  await writer.writeFile('blocked.example\n');
  await writer.close();
  const gw = await starting;
  t.after(() => gw.child.kill('SIGKILL'));
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await assert.rejects(connectVia(gw.port, echo.port), /NotAllowed/);
});

test('a rejected reload changes nothing, its log level included: the rejection is still logged', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  // Valid YAML and schema; the missing list file only shows when the router is built.
  await writeFile(path, `${BASE}log: { level: fatal }\nrules:\n  - { name: gone, domains_file: missing.txt, action: block }\n`);
  gw.child.kill('SIGHUP');
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration');
  assert.match(JSON.stringify(rejected.errors), /missing\.txt/);
  await writeFile(path, BLOCK_LOOPBACK);
  gw.child.kill('SIGHUP');
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
});

test('a reload that raises log.level to warn still logs that it reloaded, as one that lowers it back does', async (t) => {
  const LOUD = `${BASE}metrics: { host: 127.0.0.1, port: 0 }\n`;
  const QUIET = `${LOUD}log: { level: warn }\n`;
  const path = await tempConfig(LOUD);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  const admin = (await gw.waitFor((l) => l.msg === 'socksgate listening')).admin as string;
  const reloads = (): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === 'configuration reloaded');
  await writeFile(path, QUIET);
  gw.child.kill('SIGHUP');
  await gw.waitFor(() => reloads().length === 1);
  assert.equal(reloads()[0]!.level, 30, 'at info, the level it was written under');
  // Another reload at warn is applied (counted) without a line.
  gw.child.kill('SIGHUP');
  for (let waited = 0; !/^socksgate_reloads_total\{result="ok"\} 2$/m.test(await scrape(admin)); waited += 50) {
    assert.ok(waited < 10_000, 'the second reload counted');
    await new Promise((r) => setTimeout(r, 50));
  }
  await writeFile(path, LOUD);
  gw.child.kill('SIGHUP');
  await gw.waitFor(() => reloads().length === 2);
  const between = gw.lines.slice(gw.lines.indexOf(reloads()[0]!) + 1, gw.lines.indexOf(reloads()[1]!));
  assert.deepEqual(between, [], 'no line at level warn in between');
});

test('SIGTERM stops accepting, drains for drain_timeout, exits 0', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startCliGateway(await tempConfig(BASE));
  t.after(() => gw.child.kill('SIGKILL'));
  const open = await connectVia(gw.port, echo.port);
  await echoes(open, 'hello');
  gw.child.kill('SIGTERM');
  await gw.waitFor((l) => l.msg === 'draining open connections');
  await echoes(open, 'still relaying while draining');
  await assert.rejects(connectVia(gw.port, echo.port));
  assert.ok(await closedWithin(open, 5_000), 'cut after drain_timeout');
  assert.equal(await gw.exited, 0);
  assert.ok(gw.lines.some((l) => l.msg === 'stopped'));
});

// Bounded by the test's timeout alone: a gateway that waited out handshake_timeout (or drain_timeout) would outlast it.
test('SIGTERM closes connections that have sent nothing of a request at once, a balancer\'s PROXY header alone included, rather than waiting out handshake_timeout', { timeout: 60_000 }, async (t) => {
  const text = [
    'listen:',
    '  - { host: 127.0.0.1, port: 0 }',
    '  - { host: 127.0.0.1, port: 0, proxy_protocol: { trusted: [127.0.0.1] } }',
    'limits: { drain_timeout: 5m, handshake_timeout: 5m }',
    'metrics: { host: 127.0.0.1, port: 0 }',
    '',
  ].join('\n');
  const gw = await startCliGateway(await tempConfig(text));
  t.after(() => gw.child.kill('SIGKILL'));
  const ready = await gw.waitFor((l) => l.msg === 'socksgate listening');
  const behindBalancer = Number((ready.listen as string[])[1]!.split(':').pop());
  /** A client connected to `port` that sends nothing (but `header`); its 'close'. */
  const silent = async (port: number, header?: string): Promise<{ closed: Promise<unknown> }> => {
    const s = createConnection({ host: '127.0.0.1', port });
    t.after(() => s.destroy());
    s.on('error', () => {});
    s.resume();
    const closed = once(s, 'close');
    await once(s, 'connect');
    if (header !== undefined) s.write(header);
    return { closed };
  };
  const clients = [
    await silent(gw.port),
    await silent(behindBalancer),
    await silent(behindBalancer, `PROXY TCP4 127.0.0.9 127.0.0.1 40000 ${behindBalancer}\r\n`),
  ];
  // The gateway holds all three (not the listeners' backlog) before the signal.
  for (let waited = 0; !/^socksgate_connections_active 3$/m.test(await scrape(ready.admin as string)); waited += 50) {
    assert.ok(waited < 10_000, 'the silent connections accepted');
    await new Promise((r) => setTimeout(r, 50));
  }
  gw.child.kill('SIGTERM');
  await Promise.all(clients.map((c) => c.closed));
  assert.equal(await gw.exited, 0);
  const ends = gw.lines.filter((l) => l.msg === 'session end');
  assert.deepEqual(ends.map((l) => l.error), ['gateway stopped', 'gateway stopped', 'gateway stopped']);
});

test('--watch stops watching once the gateway stops: an edit during the drain is no rejected reload', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE.replace('drain_timeout: 1s', 'drain_timeout: 20s'));
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  const open = await connectVia(gw.port, echo.port);
  await echoes(open, 'hello');
  gw.child.kill('SIGTERM');
  await gw.waitFor((l) => l.msg === 'draining open connections');
  // A ConfigMap update landing during a rolling restart: the stopping gateway has nothing to reload.
  await writeFile(path, BLOCK_LOOPBACK);
  await new Promise((r) => setTimeout(r, 1_500)); // the watch's debounce is 200 ms
  open.end();
  assert.equal(await gw.exited, 0);
  assert.deepEqual(gw.lines.filter((l) => l.trigger === 'watch').map((l) => l.msg), []);
});

test('--watch: a members_file emptied for rewriting (fetch > proxies.txt) is rejected, and the pool keeps its members', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const member = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => member.close());
  const path = await tempConfig(`${BASE}upstreams:\n  crawl: { type: pool, members_file: proxies.txt }\ndefault: crawl\n`);
  const list = join(path, '..', 'proxies.txt');
  await writeFile(list, `127.0.0.1:${member.port}\n`);
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  await echoes(await connectVia(gw.port, echo.port), 'before');
  await writeFile(list, '# fetched hourly from the provider\n');
  const rejected = await gw.waitFor((l) => l.msg === 'reload rejected; keeping the running configuration' || l.msg === 'configuration reloaded');
  assert.equal(rejected.msg, 'reload rejected; keeping the running configuration');
  assert.deepEqual(rejected.errors, [`${list}:1:1: members_file holds no member (blank lines and comments only)`]);
  await echoes(await connectVia(gw.port, echo.port), 'the running members stay');
});

test('--watch also reloads when a list file named by a rule changes', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(`${BASE}dns: { hosts: { echo.test: 127.0.0.1 } }\nrules:\n  - { name: listed, domains_file: blocked.txt, action: block }\n`);
  const list = join(path, '..', 'blocked.txt');
  await writeFile(list, '# nothing blocked yet\n');
  const gw = await startCliGateway(path, ['--watch']);
  t.after(() => gw.child.kill('SIGKILL'));
  const viaName = (): Promise<unknown> =>
    socksConnect(gw.port, { host: 'echo.test', port: echo.port }, 3_000).then(({ socket }) => socket.destroy());
  await viaName();
  await writeFile(list, 'echo.test\n');
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  await assert.rejects(viaName(), /NotAllowed/);
});

test('an uncaught exception is logged, stops accepting, drains briefly (not drain_timeout) and exits 70', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  // drain_timeout: 1h: an exit within the wait below can only come from the short drain.
  const path = await tempConfig('listen: [{ host: 127.0.0.1, port: 0 }]\nlimits: { drain_timeout: 1h }\n');
  const gw = await startCliGateway(path, [], [FAULT_ON_SIGUSR2]);
  t.after(() => gw.child.kill('SIGKILL'));
  const open = await connectVia(gw.port, echo.port);
  t.after(() => open.destroy());
  await echoes(open, 'before');
  gw.child.kill('SIGUSR2');
  const fatal = await gw.waitFor((l) => l.msg === 'unexpected error; stopping so that the supervisor restarts the gateway');
  assert.equal(fatal.level, 60);
  assert.equal(fatal.origin, 'uncaughtException');
  assert.match(JSON.stringify(fatal.err), /injected fault \(SIGUSR2\)/);
  await assert.rejects(connectVia(gw.port, echo.port), 'no longer accepting');
  await echoes(open, 'an open connection still relays while draining');
  const code = await Promise.race([gw.exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))]);
  assert.equal(code, 70);
  assert.ok(await closedWithin(open, 1_000), 'the open connection was cut at exit');
});

test('a reload naming another log format or number of workers says they apply after a restart, each time', async (t) => {
  const path = await tempConfig(BASE);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  const changed = `${BASE}log: { format: pretty }\nworkers: 2\n`;
  for (const round of [1, 2]) {
    await writeFile(path, changed);
    gw.child.kill('SIGHUP');
    await gw.waitFor((l) => l.msg === 'configuration reloaded' && gw.lines.filter((x) => x.msg === 'configuration reloaded').length === round);
    // Still one process writing JSON lines: neither took effect.
    assert.equal(gw.lines.filter((l) => l.msg === 'log format changed: it applies after a restart' && l.running === 'json' && l.configured === 'pretty').length, round);
    assert.equal(gw.lines.filter((l) => l.msg === 'the number of workers changes after a restart' && l.configured === 2).length, round);
  }
});

test('SIGHUP that adds a rule: no counter in /metrics goes down, an upstream\'s attempts included', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const up = await startMicrosocks({ host: '127.0.0.1' });
  t.after(() => up.close());
  const text = `${BASE}metrics: { host: 127.0.0.1, port: 0 }\nupstreams:\n  up: { type: socks5, host: 127.0.0.1, port: ${up.port} }\ndefault: up\n`;
  const path = await tempConfig(text);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  const admin = (await gw.waitFor((l) => l.msg === 'socksgate listening')).admin as string;
  for (let i = 0; i < 3; i++) {
    const s = await connectVia(gw.port, echo.port);
    await echoes(s, `through up ${i}`);
    s.destroy();
  }
  const attempts = (metrics: string): string | undefined => metrics.split('\n').find((l) => l.startsWith('socksgate_upstream_attempts_total{upstream="up",pool=""} '));
  const before = await scrape(admin);
  assert.equal(attempts(before), 'socksgate_upstream_attempts_total{upstream="up",pool=""} 3');

  await writeFile(path, `${text}rules:\n  - { name: added, ports: [9], action: block }\n`);
  gw.child.kill('SIGHUP');
  await gw.waitFor((l) => l.msg === 'configuration reloaded');
  const after = await scrape(admin);
  assert.deepEqual(countersDown(before, after), []);
  assert.equal(attempts(after), 'socksgate_upstream_attempts_total{upstream="up",pool=""} 3');
});
