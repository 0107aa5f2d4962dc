// `npm start`, as the README's quick start runs it. npm runs the script through `sh -c` and, on
// SIGTERM or SIGINT, signals its child: a supervisor that stops the process it started (pm2,
// supervisord, foreman, an IDE) signals npm. A terminal's Ctrl-C signals the whole group, npm
// and the gateway, and npm passes it on as well.
import { before, test, type TestContext } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createConnection } from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { logLines } from '../helpers/cli.js';
import { tempConfig } from '../helpers/workers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

// What `npm start` runs first (prestart): dist/ as the README's quick start builds it.
before(
  async () => {
    await promisify(execFile)('npm', ['run', '--silent', 'build'], { cwd: ROOT, timeout: 170_000 });
  },
  { timeout: 180_000 },
);

interface NpmStart {
  npm: ChildProcess;
  port: number;
  lines: Array<Record<string, unknown>>;
  stderr: () => string;
  /** npm's exit code and signal. */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** True once every process writing to the output (npm, its shell, the gateway) is gone. */
  outputEnded: Promise<true>;
}

/** `npm start -- --config FILE` in a process group of its own, up and listening. */
async function npmStart(t: TestContext, config: string): Promise<NpmStart> {
  // prestart's build ran once, before the tests: the start script itself is what is tested.
  const npm = spawn('npm', ['start', '--silent', '--ignore-scripts', '--', '--config', config], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  // Whatever is left of the group, a gateway orphaned included, is killed after.
  t.after(() => {
    try {
      process.kill(-npm.pid!, 'SIGKILL');
    } catch {
      // the group is gone: nothing to kill
    }
  });
  const lines = logLines(npm.stdout!);
  let stderr = '';
  npm.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const outputEnded = once(npm.stdout!, 'close').then(() => true as const);
  const exited = once(npm, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let ready: Record<string, unknown> | undefined;
  for (let waited = 0; waited < 150_000 && !ready && npm.exitCode === null; waited += 100) {
    ready = lines.find((l) => l.msg === 'socksgate listening');
    if (!ready) await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(ready, `never listening; stderr: ${stderr}; lines: ${JSON.stringify(lines)}`);
  const port = Number((ready.listen as string[])[0]!.split(':').pop());
  return { npm, port, lines, stderr: () => stderr, exited, outputEnded };
}

async function nothingLeft(run: NpmStart): Promise<void> {
  const ended = await Promise.race([run.outputEnded, new Promise<false>((r) => setTimeout(() => r(false), 10_000))]);
  assert.ok(ended, `a process of \`npm start\` still runs 10 s after npm exited; lines: ${JSON.stringify(run.lines)}`);
  const probe = createConnection({ host: '127.0.0.1', port: run.port });
  const [err] = (await once(probe, 'error')) as [NodeJS.ErrnoException];
  assert.equal(err.code, 'ECONNREFUSED', 'nothing listens on the port any more');
}

test('SIGTERM to `npm start` stops the gateway: it drains, exits 0, and nothing is left listening', { timeout: 180_000 }, async (t) => {
  const run = await npmStart(t, await tempConfig('listen: [{ host: 127.0.0.1, port: 0 }]\n'));
  run.npm.kill('SIGTERM');
  const [code, signal] = await run.exited;
  await nothingLeft(run);
  assert.ok(run.lines.some((l) => l.msg === 'stopped'), JSON.stringify(run.lines));
  assert.deepEqual([code, signal], [0, null], run.stderr());
});

test('Ctrl-C at the terminal of `npm start` (the group signalled, npm passing it on): one stop, exit 0', { timeout: 180_000 }, async (t) => {
  const run = await npmStart(t, await tempConfig('listen: [{ host: 127.0.0.1, port: 0 }]\n'));
  process.kill(-run.npm.pid!, 'SIGINT');
  const [code, signal] = await run.exited;
  await nothingLeft(run);
  assert.ok(!run.lines.some((l) => l.msg === 'second signal: stopping at once'), 'the one Ctrl-C was taken for two');
  assert.ok(run.lines.some((l) => l.msg === 'stopped'), JSON.stringify(run.lines));
  assert.deepEqual([code, signal], [0, null], run.stderr());
});
