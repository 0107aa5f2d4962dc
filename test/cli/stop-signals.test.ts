// The same signal twice in quick succession under `npm start` is one stop (npm passes on the
// Ctrl-C the gateway got too); a further one is a second signal, as it is run any other way.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { spawnTied } from '../helpers/spawn.js';

const SIGNAL_SELF = fileURLToPath(new URL('../helpers/signal-self.ts', import.meta.url));

/** Runs signal-self.ts sending itself SIGINT `times` times; its exit code and output lines. */
function signalSelf(times: number, env: NodeJS.ProcessEnv): Promise<{ code: number | null; lines: string[] }> {
  return new Promise((resolve) => {
    const child = spawnTied(process.execPath, ['--import', 'tsx', SIGNAL_SELF, String(times)], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000); // a hung process, not speed
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, lines: out.split('\n').filter((l) => l !== '') });
    });
  });
}

const UNDER_NPM_START = { npm_lifecycle_event: 'start' };
const RUN_DIRECTLY = { npm_lifecycle_event: '' };

test('under npm start, a Ctrl-C that arrives twice (from the terminal and from npm) is one stop', async () => {
  assert.deepEqual(await signalSelf(2, UNDER_NPM_START), { code: 0, lines: ['stop SIGINT', 'no stop at once'] });
});

test('under npm start, a quick second Ctrl-C (its signal arriving twice too) stops at once', async () => {
  assert.deepEqual(await signalSelf(3, UNDER_NPM_START), { code: 1, lines: ['stop SIGINT', 'at once SIGINT'] });
});

test('run directly, a second SIGINT however soon stops at once', async () => {
  assert.deepEqual(await signalSelf(2, RUN_DIRECTLY), { code: 1, lines: ['stop SIGINT', 'at once SIGINT'] });
});
