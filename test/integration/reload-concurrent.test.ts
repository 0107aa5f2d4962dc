import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { stringify } from 'yaml';
import { parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
import { startGateway } from '../helpers/index.js';
import { listenTracked } from '../helpers/servers.js';

/** A pool member that only counts the health checks reaching it (each one a connection). */
async function countingMember(): Promise<{ port: number; checks: () => number; close(): Promise<void> }> {
  let checks = 0;
  const server = createServer((s) => {
    checks++;
    s.destroy();
  });
  const { port, close } = await listenTracked(server);
  return { port, checks: () => checks, close };
}

function poolConfig(memberPort: number): Config {
  const text = stringify({
    listen: [{ host: '127.0.0.1', port: 0 }],
    upstreams: {
      pool: { type: 'pool', members: [`socks5://127.0.0.1:${memberPort}`], health_check: { interval: '50ms', timeout: '1s', target: '127.0.0.1:9' } },
    },
    default: 'pool',
  });
  return parseConfig(text, '/tmp/socksgate-test.yaml', {});
}

async function until(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  for (let waited = 0; waited <= timeoutMs; waited += 20) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
}

test('two reloads at once: the last one called is live, and only its pool keeps checking health', async (t) => {
  const a = await countingMember();
  t.after(() => a.close());
  const b = await countingMember();
  t.after(() => b.close());
  const gw = await startGateway();
  t.after(() => gw.close());

  await Promise.all([gw.gw.reload(poolConfig(a.port)), gw.gw.reload(poolConfig(b.port))]);
  const live = gw.gw.config.upstreams.pool;
  assert.ok(live?.type === 'pool');
  assert.deepEqual(live.members, [`socks5://127.0.0.1:${b.port}`]);

  // A check that was already connecting when A's pool stopped may still land: start
  // counting once B has been checked again, then give B three more rounds.
  const bStart = b.checks();
  assert.ok(await until(() => b.checks() > bStart, 5_000), 'the live pool checks its member');
  const aSettled = a.checks();
  const bSettled = b.checks();
  assert.ok(await until(() => b.checks() >= bSettled + 3, 5_000), 'the live pool keeps checking');
  assert.equal(a.checks() - aSettled, 0, "the replaced pool's health checks stopped");
});
