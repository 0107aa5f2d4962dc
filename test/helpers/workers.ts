// A `workers: 2` gateway as the CLI tests run it (test/cli/workers*.test.ts): a primary and
// two node:cluster workers, real processes on loopback ports.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { get } from 'node:http';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import type { RunningGateway } from './cli.js';
import { socksConnect } from './index.js';
import { tempDir } from './temp-dir.js';

// Debug: each worker's own reload line (the primary logs the reload once, at info or error).
export const BASE = 'listen: [{ host: 127.0.0.1, port: 0 }]\nworkers: 2\nmetrics: { host: 127.0.0.1, port: 0 }\nlimits: { drain_timeout: 5s }\nlog: { level: debug }\n';
export const BOOT_MS = 60_000; // three Node processes through tsx on a busy machine

export async function tempConfig(text: string): Promise<string> {
  const path = join(await tempDir('workers'), 'socksgate.yaml');
  await writeFile(path, text);
  return path;
}

/** The primary's "workers listening" line: worker pids and the admin address. */
export async function started(gw: RunningGateway): Promise<{ pids: number[]; admin: string }> {
  const line = await gw.waitFor((l) => l.msg === 'workers listening', BOOT_MS);
  return { pids: line.pids as number[], admin: line.admin as string };
}

/** A SOCKS5 tunnel to the echo server at `destPort`, `text` sent through it and echoed. */
export async function echoOnce(port: number, destPort: number, text: string, host = '127.0.0.1'): Promise<Socket> {
  const { socket } = await socksConnect(port, { host, port: destPort }, 5_000);
  socket.write(text);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  assert.equal(chunk.toString(), text);
  return socket;
}

/** GET /metrics of the admin listener at `admin`; rejects unless it answers 200. */
export function scrape(admin: string): Promise<string> {
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
export function total(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

export async function waitUntil(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  for (let waited = 0; !cond(); waited += 25) {
    if (waited > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The workers' own lines with message `msg` so far (not the primary's). */
export const workerLines = (gw: RunningGateway, msg: string): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === msg && l.role !== 'primary');

/** The primary's lines with message `msg` so far. */
export const primaryLines = (gw: RunningGateway, msg: string): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === msg && l.role === 'primary');

/** The workers' access-log lines so far. */
export const sessionEnds = (gw: RunningGateway): Array<Record<string, unknown>> => gw.lines.filter((l) => l.msg === 'session end');
