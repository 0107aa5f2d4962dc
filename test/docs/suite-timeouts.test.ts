import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from '../helpers/test.js';

const TEST_DIR = fileURLToPath(new URL('..', import.meta.url));
const HELPER = fileURLToPath(new URL('../helpers/test.ts', import.meta.url));
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await testFiles(path)));
    else if (e.name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

test('every test file takes test, before and after from the suite helper (a timeout per test), not from node:test', async () => {
  const files = await testFiles(TEST_DIR);
  assert.ok(files.length > 100, `found ${files.length} test files`);
  const direct = [];
  for (const file of files) {
    const text = await readFile(file, 'utf8');
    // Type-only imports carry no test; a value import of node:test would bypass the timeout.
    if (/^import \{[^}]*\} from 'node:test'/m.test(text)) direct.push(relative(TEST_DIR, file));
  }
  assert.deepEqual(direct, []);
});

test('a test that hangs fails by its own name, and the tests after it in the file still run', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-suite-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'hang.test.ts');
  await writeFile(
    file,
    [
      `import { test } from ${JSON.stringify(HELPER)};`,
      `test('waits for ever', () => new Promise(() => setInterval(() => {}, 1_000)));`,
      `test('runs after it', () => {});`,
    ].join('\n'),
  );
  // The same runner flags as `npm test`, with the file's own timeout (which ends the process the hung test keeps alive) far beyond the test's;
  // a runner of its own, not a child of this one (which would skip running files).
  const env: NodeJS.ProcessEnv = { ...process.env, TEST_TIMEOUT_MS: '300' };
  delete env.NODE_TEST_CONTEXT;
  const out = await new Promise<string>((resolve) => {
    execFile(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', '--test-timeout=5000', file], { cwd: ROOT, env, timeout: 40_000 }, (_err, stdout, stderr) => resolve(stdout + stderr));
  });
  assert.match(out, /not ok 1 - waits for ever[\s\S]*test timed out after 300ms/);
  assert.match(out, /^ok 2 - runs after it$/m);
});
