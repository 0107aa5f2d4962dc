// Safety defaults (PRODUCT.md): a slow reader slows its writer instead of growing memory.
// The gateway runs as the real CLI in its own process, so its RSS (/proc/PID/status) is its
// own: 1 GiB is offered to a client that reads a little and pauses, then by a client to a
// destination that does the same, and the gateway's RSS may not grow by 64 MiB meanwhile.
// Each run is a few seconds: the offer is held back by backpressure, never completed.
import { after, before, test, type TestContext } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { startCliGateway, type RunningGateway } from '../helpers/cli.js';
import { startEchoServer } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';
import { echoOnce, socks5Raw } from '../helpers/raw-proxy.js';

const MiB = 1024 * 1024;
const OFFERED = 1024 * MiB;
const GROWTH_BOUND = 64 * MiB;
const RUN_MS = 4_000;

/** Resident set size of `pid`, in bytes, from /proc (VmRSS is in kB). */
export function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

// One gateway process for both runs (start-up is most of a run's time); each run takes its
// own baseline after a warm-up connection, so first-use allocations are not counted as growth.
let gw: RunningGateway;
let echo: Awaited<ReturnType<typeof startEchoServer>>;
before(async () => {
  const dir = await tempDir('mem');
  const path = join(dir, 'socksgate.yaml');
  await writeFile(path, 'listen: [{ host: 127.0.0.1, port: 0 }]\nlimits: { idle_timeout: 60s, drain_timeout: 1s }\n');
  gw = await startCliGateway(path);
  echo = await startEchoServer();
});
after(async () => {
  gw?.child.kill('SIGKILL');
  await echo?.close();
});

async function baseline(): Promise<number> {
  const warm = await socks5Raw(gw.port, echo.port);
  assert.equal(await echoOnce(warm.socket, 'x'.repeat(64 * 1024)), 'x'.repeat(64 * 1024));
  warm.socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  return rssOf(gw.child.pid!);
}

/** Writes up to OFFERED bytes as fast as `s` takes them (backpressure), until stopped. */
function offer(s: Socket): { written: () => number; stop: () => void } {
  let written = 0;
  let stopped = false;
  const block = Buffer.alloc(MiB, 0x61);
  void (async () => {
    try {
      while (!stopped && written < OFFERED && !s.destroyed) {
        written += block.length;
        if (!s.write(block)) await Promise.race([once(s, 'drain'), once(s, 'close')]);
      }
    } catch {
      // the socket went away mid-write
    }
  })();
  return { written: () => written, stop: () => (stopped = true) };
}

/** Reads one chunk every 20 ms (at most a few MiB/s), counting. */
function readSlowly(s: Socket): { received: () => number; stop: () => void } {
  let received = 0;
  s.on('data', (c: Buffer) => {
    received += c.length;
    s.pause();
  });
  s.pause();
  const timer = setInterval(() => s.resume(), 20);
  return { received: () => received, stop: () => clearInterval(timer) };
}

/** Samples the child's RSS every 100 ms for RUN_MS; returns the largest. */
async function peakRss(pid: number): Promise<number> {
  let peak = 0;
  for (let waited = 0; waited < RUN_MS; waited += 100) {
    peak = Math.max(peak, rssOf(pid));
    await new Promise((r) => setTimeout(r, 100));
  }
  return peak;
}

/**
 * Offers OFFERED bytes through the gateway towards a peer that reads slowly: the client (the
 * destination offers) or the destination (the client offers). The writer must be held back and
 * the gateway's RSS stay within GROWTH_BOUND of its baseline.
 */
async function slowPeerRun(t: TestContext, slow: 'client' | 'destination'): Promise<void> {
  const base = await baseline();
  let sender!: ReturnType<typeof offer>;
  let reader!: ReturnType<typeof readSlowly>;
  const destination = await listenTracked(
    createServer((s) => {
      s.on('error', () => {});
      if (slow === 'client') sender = offer(s);
      else reader = readSlowly(s);
    }),
  );
  t.after(() => destination.close());
  t.after(() => reader?.stop());
  const client = await socks5Raw(gw.port, destination.port);
  t.after(() => client.socket.destroy());
  assert.equal(client.code, 0);
  if (slow === 'client') reader = readSlowly(client.socket);
  else sender = offer(client.socket);
  t.after(() => sender?.stop());

  const peak = await peakRss(gw.child.pid!);
  sender.stop();
  const growth = peak - base;
  console.log(`slow ${slow}: RSS ${(base / MiB).toFixed(1)} → peak ${(peak / MiB).toFixed(1)} MiB; offered ${sender.written() / MiB} MiB, read ${(reader.received() / MiB).toFixed(1)} MiB`);
  assert.ok(reader.received() > 0, `the ${slow} did read through the gateway`);
  assert.ok(sender.written() < OFFERED, `the ${slow === 'client' ? 'sender' : 'client'} was held back`);
  assert.ok(sender.written() - reader.received() < GROWTH_BOUND, `in flight: ${sender.written() - reader.received()} bytes`);
  assert.ok(growth < GROWTH_BOUND, `RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
}

test('1 GiB offered to a client that reads slowly: the gateway holds the sender back, its RSS grows < 64 MiB', (t) => slowPeerRun(t, 'client'));

test('1 GiB offered by a client to a destination that reads slowly: the same holds the other way', (t) => slowPeerRun(t, 'destination'));
