// `workers: 2`: the primary and its workers read whatever comes over their IPC channel. A value
// that is no message of theirs, or one with its fields missing or wrong, changes nothing:
// neither process throws, stops or takes it for a count, a token, a log level or a registry.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { startCliGateway } from '../helpers/cli.js';
import { startEchoServer } from '../helpers/index.js';
import { BASE, BOOT_MS, echoOnce, scrape, started, tempConfig, total } from '../helpers/workers.js';

const ODD_MESSAGES = new URL('../helpers/odd-messages.ts', import.meta.url).href;

test('odd messages over the IPC channel, both ways, leave the primary and both workers serving as before', { timeout: 120_000 }, async (t) => {
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const path = await tempConfig(BASE.replace('limits: { drain_timeout: 5s }', 'limits: { drain_timeout: 5s, max_connections_per_source: 4 }'));
  const gw = await startCliGateway(path, [], [ODD_MESSAGES], BOOT_MS);
  t.after(() => gw.child.kill('SIGKILL'));
  // The primary read the workers' odd messages before their `ready`, and logs on at its level.
  const { admin } = await started(gw);
  // Each worker answers this scrape after the odd messages the primary sent it (one channel, in order).
  const metrics = await scrape(admin);
  assert.equal(total(metrics, 'socksgate_unexpected_errors_total'), 0, 'no process met an error');
  for (let i = 0; i < 4; i++) (await echoOnce(gw.port, echo.port, `ping ${i}`)).destroy();
  assert.deepEqual(
    gw.lines.filter((l) => (l.level as number) >= 50 || (l.msg as string).startsWith('worker exited') || l.msg === 'configuration reloaded'),
    [],
    'nothing failed, no worker was replaced, and no reload was counted',
  );
});
