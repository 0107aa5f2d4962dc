// A handshake storm against the real CLI gateway in its own process: thousands of random and
// truncated SOCKS5, SOCKS4 and HTTP handshakes, a bounded number at a time, each left in one
// of the ways a hostile or broken client leaves (FIN, reset, silence). The gateway keeps
// serving during and after the storm, and its sockets and timers, read from its own /metrics
// (process.getActiveResourcesInfo() through prom-client), come back to their baseline.
import { after, before, test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { connect } from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { startDnsServer, type DnsServer } from '../helpers/dns-server.js';
import { closedPort, startEchoServer } from '../helpers/index.js';
import { echoOnce, socks5Raw } from '../helpers/raw-proxy.js';

const CLIENTS = 2_000;
const CONCURRENCY = 100;
/**
 * A client still open after this is cut by the test itself, and counted: the gateway's own
 * deadlines (500 ms handshake, 2 s idle, 2 s for a UDP association) must have closed every client long before.
 */
const CLIENT_BOUND_MS = 8_000;

/** mulberry32: a seeded generator, so a failing storm can be replayed exactly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Valid openings of each protocol, to be cut short and followed by garbage. */
function openings(echoPort: number): Buffer[] {
  const port = Buffer.from([echoPort >> 8, echoPort & 0xff]);
  const host = Buffer.from('localhost.test');
  return [
    Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1]), port]),
    Buffer.concat([Buffer.from([5, 1, 0, 5, 1, 0, 3, host.length]), host, port]),
    Buffer.concat([Buffer.from([5, 2, 0, 2, 1, 1, 0x61, 1, 0x62, 5, 3, 0, 1, 127, 0, 0, 1]), port]),
    Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([127, 0, 0, 1]), Buffer.from('user\0')]),
    Buffer.concat([Buffer.from([4, 1]), port, Buffer.from([0, 0, 0, 1]), Buffer.from('\0'), host, Buffer.from('\0')]),
    Buffer.from(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: 127.0.0.1\r\nProxy-Authorization: Basic YTpi\r\n\r\n`),
    Buffer.from(`GET http://127.0.0.1:${echoPort}/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
    Buffer.alloc(0), // pure noise
  ];
}

type Exit = 'end' | 'reset' | 'silent';

/**
 * One client: a cut opening plus noise, then FIN, a reset, or silence until the gateway closes
 * it. True when the test's own bound had to close it.
 */
function play(port: number, bytes: Buffer, exit: Exit): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let cut = false;
    const bound = setTimeout(() => {
      cut = true;
      s.destroy();
    }, CLIENT_BOUND_MS);
    s.on('error', () => {});
    s.on('data', () => {});
    s.on('close', () => {
      clearTimeout(bound);
      resolve(cut);
    });
    s.on('connect', () => {
      if (bytes.length > 0) s.write(bytes);
      if (exit === 'end') s.end();
      else if (exit === 'reset') setImmediate(() => s.resetAndDestroy());
    });
  });
}

/** Plays `count` clients, CONCURRENCY at a time; resolves to how many the test's bound had to cut. */
function storm(port: number, echoPort: number, count: number, seed: number): Promise<number> {
  const rand = rng(seed);
  const opens = openings(echoPort);
  const exits: Exit[] = ['end', 'reset', 'silent'];
  const next = (): [Buffer, Exit] => {
    const open = opens[Math.floor(rand() * opens.length)]!;
    const cut = open.subarray(0, Math.floor(rand() * (open.length + 1)));
    const noise = Buffer.from(Array.from({ length: Math.floor(rand() * 64) }, () => Math.floor(rand() * 256)));
    return [Buffer.concat([cut, rand() < 0.5 ? noise : Buffer.alloc(0)]), exits[Math.floor(rand() * exits.length)]!];
  };
  let started = 0;
  let cut = 0;
  const worker = async (): Promise<void> => {
    while (started < count) {
      started++;
      const [bytes, exit] = next();
      if (await play(port, bytes, exit)) cut++;
    }
  };
  return Promise.all(Array.from({ length: CONCURRENCY }, worker)).then(() => cut);
}

/** The admin listener's /metrics, on a fresh connection each time (so no scrape socket lingers). */
function scrape(port: number): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', agent: false, headers: { connection: 'close' }, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        const values = new Map<string, number>();
        for (const line of text.split('\n')) {
          const m = /^([a-z_]+(?:\{[^}]*\})?) ([0-9.e+-]+)$/.exec(line);
          if (m) values.set(m[1]!, Number(m[2]));
        }
        resolve(values);
      });
    });
    req.on('timeout', () => req.destroy(new Error('scrape timeout')));
    req.on('error', reject);
  });
}

/** What must come back: open connections, sockets, servers and (referenced) timers. */
const WATCHED = ['TCPSocketWrap', 'TCPServerWrap', 'Timeout'];
function resources(m: Map<string, number>): Record<string, number> {
  const out: Record<string, number> = { connections_active: m.get('socksgate_connections_active') ?? Number.NaN };
  for (const type of WATCHED) out[type] = m.get(`socksgate_nodejs_active_resources{type="${type}"}`) ?? 0;
  return out;
}

let gw: RunningGateway;
let adminPort: number;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
let dns: DnsServer;
before(async () => {
  adminPort = await closedPort();
  // Cut and noisy requests name random hosts and addresses: names go only to this server,
  // and only loopback is dialed (everything else is blocked by the rules).
  dns = await startDnsServer({ 'localhost.test': { A: ['127.0.0.1'] } });
  const dir = await tempDir('storm');
  const path = join(dir, 'socksgate.yaml');
  await writeFile(
    path,
    `listen: [{ host: 127.0.0.1, port: 0 }]
metrics: { host: 127.0.0.1, port: ${adminPort} }
auth: { users: [{ username: a, password: b }], allow_anonymous: true }
dns: { servers: ["127.0.0.1:${dns.port}"] }
rules: [{ name: loopback, cidrs: [127.0.0.0/8], action: direct }]
default: block
limits: { handshake_timeout: 500ms, idle_timeout: 2s, udp_idle_timeout: 2s, drain_timeout: 1s }
`,
  );
  gw = await startCliGateway(path);
  echo = await startEchoServer();
});
after(async () => {
  gw?.child.kill('SIGKILL');
  await echo?.close();
  await dns?.close();
});

test(`${CLIENTS} random and truncated handshakes: still serving during and after, handles and timers back at baseline`, async () => {
  const connectWorks = async (): Promise<void> => {
    const c = await socks5Raw(gw.port, echo.port);
    assert.equal(c.code, 0);
    assert.equal(await echoOnce(c.socket, 'alive'), 'alive');
    c.socket.destroy();
  };
  await connectWorks();
  // The baseline once the gateway has let that connection go: two scrapes alike and none open, not a pause that usually suffices.
  let baseline = resources(await scrape(adminPort));
  for (let waited = 0; waited < 10_000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    const again = resources(await scrape(adminPort));
    const settled = baseline.connections_active === 0 && JSON.stringify(again) === JSON.stringify(baseline);
    baseline = again;
    if (settled) break;
  }
  assert.equal(baseline.connections_active, 0);

  const t0 = performance.now();
  const running = storm(gw.port, echo.port, CLIENTS, 20261203);
  await new Promise((r) => setTimeout(r, 500));
  await connectWorks(); // in the middle of the storm
  assert.equal(await running, 0, 'the gateway answered or closed every client by its own deadlines');
  console.log(`storm of ${CLIENTS}: ${Math.round(performance.now() - t0)} ms`);
  await connectWorks();
  assert.equal(gw.child.exitCode, null, 'the gateway is still running');

  let now = resources(await scrape(adminPort));
  for (let waited = 0; JSON.stringify(now) !== JSON.stringify(baseline) && waited < 10_000; waited += 250) {
    await new Promise((r) => setTimeout(r, 250));
    now = resources(await scrape(adminPort));
  }
  console.log(`back at baseline ${JSON.stringify(now)}`);
  assert.deepEqual(now, baseline, 'sockets, servers, timers and open connections are back where they started');
});
