// A gateway whose stdout nobody reads any more (the log collector died, `socksgate | head`)
// must still stop on SIGTERM and exit 0, as PRODUCT.md's command line says, not hang in
// its last flush of the log.
import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CLI } from '../helpers/cli.js';
import { spawnTied } from '../helpers/spawn.js';

/** Starts the gateway on `config`, reads its stdout until it listens, then stops reading it. */
async function gatewayWithoutReader(config: string): Promise<{ exited: Promise<number | null>; kill: (signal: NodeJS.Signals) => void }> {
  const path = join(await tempDir('stdout-gone'), 'socksgate.yaml');
  await writeFile(path, `listen: [{ host: 127.0.0.1, port: 0 }]\nlimits: { drain_timeout: 1s }\n${config}`);
  const child = spawnTied(process.execPath, ['--import', 'tsx', CLI, '--config', path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let seen = '';
  // JSON or pretty alike: the start-up line's message.
  while (!seen.includes('socksgate listening')) {
    const [chunk] = (await Promise.race([once(child.stdout!, 'data'), exited.then(() => [Buffer.from('exited')])])) as [Buffer];
    seen += chunk.toString();
    assert.ok(!seen.startsWith('exited'), 'the gateway exited before listening');
  }
  // Nobody reads the pipe any more: the gateway's next writes to it fail with EPIPE.
  child.stdout!.destroy();
  return { exited, kill: (signal) => child.kill(signal) };
}

for (const [what, config] of [
  ['one process', ''],
  ['workers: 2', 'workers: 2\n'],
  ['log.format: pretty', 'log: { format: pretty }\n'],
] as const) {
  test(`SIGTERM stops the gateway and it exits 0 after the reader of its stdout is gone (${what})`, async (t) => {
    const gw = await gatewayWithoutReader(config);
    t.after(() => gw.kill('SIGKILL'));
    gw.kill('SIGTERM');
    const code = await Promise.race([gw.exited, new Promise<string>((r) => setTimeout(() => r('still running after 15 s'), 15_000))]);
    assert.equal(code, 0);
  });
}
