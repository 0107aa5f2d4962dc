// A gateway that runs out of file descriptors (its own RLIMIT_NOFILE, a flood of idle
// clients) cannot open a socket to anyone: that is its own failure, not its upstreams'. The
// gateway runs as a real process under prlimit(1); the test fills its descriptors with
// clients that send nothing, and frees them again.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCliGateway } from '../helpers/cli.js';
import { socks5Rep, startEchoServer } from '../helpers/index.js';
import { tempDir } from '../helpers/temp-dir.js';
import { startMicrosocks } from '../helpers/upstreams.js';

const NOFILE = 128;

/** Opens `n` clients that never send; returns those the gateway kept (it drops the rest at accept when it has no descriptor). */
async function fillDescriptors(port: number, n: number): Promise<Socket[]> {
  const kept = new Set<Socket>();
  await Promise.all(
    Array.from({ length: n }, async () => {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      s.once('close', () => kept.delete(s));
      await once(s, 'connect');
      kept.add(s);
    }),
  );
  await sleep(1_000); // dropped ones are closed at once; the rest wait for handshake_timeout
  return [...kept];
}

test('out of file descriptors, a pool is not blamed by requests or health checks: no member is ejected, and the pool serves again once descriptors are free', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const members = await Promise.all([startMicrosocks({ host: '127.0.0.1' }), startMicrosocks({ host: '127.0.0.1' })]);
  t.after(() => Promise.all(members.map((m) => m.close())));
  const dir = await tempDir('descriptors');
  const config = join(dir, 'socksgate.yaml');
  await writeFile(
    config,
    [
      'listen: [{ host: 127.0.0.1, port: 0 }]',
      'egress: { deny: [] }',
      'limits: { handshake_timeout: 30s, connect_timeout: 3s }',
      'upstreams:',
      '  crawl:',
      '    type: pool',
      '    strategy: round-robin',
      '    ban_after: 1',
      '    max_attempts: 2',
      `    health_check: { interval: 500ms, timeout: 1s, target: "127.0.0.1:${echo.port}" }`,
      `    members: [${members.map((m) => `"socks5://127.0.0.1:${m.port}"`).join(', ')}]`,
      'default: crawl',
      '',
    ].join('\n'),
  );
  const gw = await startCliGateway(config, [], [], 60_000, { nofile: NOFILE });
  t.after(() => void gw.child.kill('SIGKILL'));

  const idle = await fillDescriptors(gw.port, NOFILE + 64);
  t.after(() => idle.forEach((s) => s.destroy()));
  assert.ok(idle.length > 0 && idle.length < NOFILE, `kept ${idle.length} idle clients`);
  // One descriptor free: a client is accepted on it, and its socket to a member cannot be opened.
  idle.pop()!.destroy();
  await sleep(300);
  const full = [];
  for (let i = 0; i < 3; i++) full.push(await socks5Rep(gw.port, echo));
  assert.deepEqual(full, [1, 1, 1], 'general failure while no socket can be opened');
  await sleep(1_500); // health checks meet the shortage too

  for (const s of idle.splice(0)) s.destroy();
  await sleep(500);
  assert.equal(await socks5Rep(gw.port, echo), 0, 'served through the pool once descriptors are free');
  const ejected = gw.lines.filter((l) => l.msg === 'pool member ejected' || l.msg === 'pool has no healthy member');
  assert.deepEqual(ejected, [], 'no member blamed for the gateway\'s own shortage');
  const line = gw.lines.find((l) => l.msg === 'session end' && l.rep === 1);
  assert.match(String(line?.error), /out of file descriptors/);
});

test('clients dropped at accept for want of a descriptor are logged once while it lasts, and its end once', async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const dir = await tempDir('descriptors');
  const config = join(dir, 'socksgate.yaml');
  await writeFile(config, 'listen: [{ host: 127.0.0.1, port: 0 }]\nlimits: { handshake_timeout: 30s }\n');
  const gw = await startCliGateway(config, [], [], 60_000, { nofile: NOFILE });
  t.after(() => void gw.child.kill('SIGKILL'));
  const short = (): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === 'out of file descriptors');

  const idle = await fillDescriptors(gw.port, NOFILE + 64);
  t.after(() => idle.forEach((s) => s.destroy()));
  assert.ok(idle.length < NOFILE, `kept ${idle.length} idle clients`);
  await gw.waitFor((l) => l.msg === 'out of file descriptors', 5_000);
  // More clients dropped while it lasts: no more lines.
  const more = await fillDescriptors(gw.port, 64);
  assert.deepEqual(more, []);
  await sleep(2_500);
  assert.equal(short().length, 1);

  for (const s of idle.splice(0)) s.destroy();
  await gw.waitFor((l) => l.msg === 'file descriptors available again', 5_000);
  assert.equal(await socks5Rep(gw.port, echo), 0, 'served again');
  assert.equal(short().length, 1);
});
