// getaddrinfo answers "no such name" (EAI_NONAME) when it could not open /etc/hosts or a
// socket because the process had no file descriptor left: such an answer is a failure, not a
// negative answer to cache for negative_ttl. The resolver runs in a child process started
// under a limit of 64 descriptors, which it fills itself (the test runner's own are spared).
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { runProcess } from '../helpers/clients.js';
import { requireFile } from '../helpers/spawn.js';

const RESOLVER = fileURLToPath(new URL('../../src/dns/resolver.ts', import.meta.url));
const PRLIMIT = requireFile('/usr/bin/prlimit', 'util-linux');

const SCRIPT = `
import { openSync, closeSync } from 'node:fs';
const { createResolver } = await import(process.argv[1]);
const dns = createResolver({ cache_size: 10, negative_ttl: 60_000, timeout: 5_000, prefer: 'ipv4', hosts: {} });
const outcome = (p) => p.then((a) => 'ok ' + a.map((x) => x.address).join(','), (e) => 'error ' + e.message);
const held = [];
for (let i = 0; i < 1_000; i++) {
  try { held.push(openSync('/dev/null', 'r')); } catch { break; }
}
const full = await outcome(dns.lookup('localhost'));
for (const fd of held) closeSync(fd);
const after = await outcome(dns.lookup('localhost'));
console.log(JSON.stringify({ held: held.length, full, after }));
`;

test('a lookup made while the process has no descriptor left fails, and is asked again once descriptors are free', async () => {
  const run = await runProcess(PRLIMIT, ['--nofile=64:64', process.execPath, '--import', 'tsx', '--input-type=module', '-e', SCRIPT, RESOLVER], {
    timeoutMs: 30_000,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    cwd: fileURLToPath(new URL('../..', import.meta.url)),
  });
  const line = run.stdout.trim().split('\n').pop() ?? '';
  const out = JSON.parse(line) as { held: number; full: string; after: string };
  assert.ok(out.held > 0, run.stderr);
  assert.equal(out.full, 'error localhost: out of file descriptors');
  assert.match(out.after, /^ok .*127\.0\.0\.1/);
});
