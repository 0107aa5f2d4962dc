// docs/load-balancers.md gives an HAProxy backend to copy. Run as written (its addresses moved
// to loopback) in front of two real gateways, it must do what the page says a balancer does:
// an instance that drains leaves the rotation, and no new client is sent to its closed listener.
import { test, type TestContext } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { closedPort, readBytes } from '../helpers/index.js';
import { requireFile, spawnTied } from '../helpers/spawn.js';

const HAPROXY = '/usr/sbin/haproxy';

/** The `backend` of the page's HAProxy block, as written. */
async function documentedBackend(): Promise<string[]> {
  const page = await readFile('docs/load-balancers.md', 'utf8');
  const lines = page.split('\n');
  const start = lines.findIndex((l) => l.startsWith('backend '));
  assert.ok(start >= 0, 'docs/load-balancers.md has an HAProxy backend');
  const end = lines.findIndex((l, i) => i > start && !/^\s+\S/.test(l));
  return lines.slice(start, end);
}

interface Instance {
  gw: RunningGateway;
  admin: number;
}

async function startInstance(t: TestContext): Promise<Instance> {
  const admin = await closedPort();
  const dir = await tempDir('haproxy');
  const path = join(dir, 'socksgate.yaml');
  // As the page sets a listener up for a balancer: PROXY protocol from the balancer's address.
  const config = `listen:\n  - host: 127.0.0.1\n    port: 0\n    proxy_protocol: { trusted: [127.0.0.0/8] }\nlimits: { drain_timeout: 20s }\nmetrics: { host: 127.0.0.1, port: ${admin} }\n`;
  await writeFile(path, config);
  const gw = await startCliGateway(path);
  t.after(() => gw.child.kill('SIGKILL'));
  return { gw, admin };
}

/** One SOCKS5 greeting through `port`: true when the gateway answered it. */
async function greeted(port: number): Promise<boolean> {
  const s = connect(port, '127.0.0.1');
  s.on('error', () => {});
  try {
    await once(s, 'connect');
    s.write(Buffer.from([0x05, 0x01, 0x00]));
    return (await readBytes(s, 2, 3_000)).equals(Buffer.from([0x05, 0x00]));
  } catch {
    return false;
  } finally {
    s.destroy();
  }
}

test("the page's HAProxy backend takes a draining instance out of rotation: no new client reaches its closed listener", { timeout: 120_000 }, async (t) => {
  requireFile(HAPROXY, 'haproxy');
  const instances = [await startInstance(t), await startInstance(t)];
  // Each `server` line of the page in turn names one instance: its proxy port and admin port.
  let n = 0;
  const backend = (await documentedBackend()).map((line) => {
    if (!/^\s+server\s/.test(line)) return line;
    const i = instances[n++];
    assert.ok(i, 'no more server lines than instances');
    return line.replace(/\s\S+:\d+\s/, ` 127.0.0.1:${i.gw.port} `).replace(/\bport \d+/, `port ${i.admin}`);
  });
  assert.equal(n, 2, 'the backend names two instances');
  const front = await closedPort();
  const dir = await tempDir('haproxy');
  const cfg = join(dir, 'haproxy.cfg');
  const sock = join(dir, 'haproxy.sock');
  const defaults = ['global', `    stats socket ${sock} mode 600 level user`, 'defaults', '    mode tcp', '    timeout connect 2s', '    timeout client 30s', '    timeout server 30s'];
  await writeFile(cfg, [...defaults, 'frontend clients', `    bind 127.0.0.1:${front}`, '    default_backend socksgate', ...backend, ''].join('\n'));
  const haproxy = spawnTied(HAPROXY, ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  haproxy.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  t.after(() => haproxy.kill('SIGKILL'));

  // Both instances in rotation: each has served a client through the balancer.
  const served = (i: Instance): boolean => i.gw.lines.some((l) => l.msg === 'session end' && l.protocol === 'socks5');
  for (let tries = 0; !instances.every(served); tries++) {
    assert.ok(tries < 100 && haproxy.exitCode === null, `both instances serve through haproxy; haproxy said: ${stderr}`);
    await greeted(front);
    await new Promise((r) => setTimeout(r, 50));
  }

  // The first instance drains (a client of its own stays open), and says so on /readyz.
  const held: Socket = connect(instances[0]!.gw.port, '127.0.0.1');
  held.on('error', () => {});
  t.after(() => held.destroy());
  held.write(Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.1 127.0.0.1 40000 1080\r\n'), Buffer.from([0x05, 0x01, 0x00])]));
  assert.deepEqual([...(await readBytes(held, 2))], [0x05, 0x00]);
  instances[0]!.gw.child.kill('SIGTERM');
  await instances[0]!.gw.waitFor((l) => l.msg === 'draining open connections');

  let refused = 0;
  for (let i = 0; i < 20; i++) if (!(await greeted(front))) refused++;
  assert.equal(refused, 0, `clients sent to the draining instance: ${refused} of 20`);
  // Out of rotation, as /readyz says, within HAProxy's default check rounds (3 × 2 s).
  for (let waited = 0; (await serverStatus(sock, 'gw1')) !== 'DOWN'; waited += 250) {
    assert.ok(waited < 10_000, `haproxy still has the draining instance in rotation: ${await serverStatus(sock, 'gw1')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.equal(await serverStatus(sock, 'gw2'), 'UP');
});

/** A server's status as HAProxy's stats socket gives it ("UP", "DOWN", …; `show stat` CSV, column 18). */
async function serverStatus(sock: string, server: string): Promise<string | undefined> {
  const s = connect(sock);
  s.on('error', () => {});
  s.end('show stat\n');
  let text = '';
  for await (const chunk of s) text += String(chunk);
  return text
    .split('\n')
    .map((l) => l.split(','))
    .find((f) => f[0] === 'socksgate' && f[1] === server)?.[17];
}
