// SECURITY.md's locked-down configuration is what people copy for a public gateway:
// it must pass `socksgate check` as written, and lock what it says it locks.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { hashPassword } from '../../src/server/auth.js';
import { runCli } from '../helpers/cli.js';

test("SECURITY.md's locked-down example passes check, and without its auth it would not", async (t) => {
  const doc = await readFile('SECURITY.md', 'utf8');
  const yaml = /```yaml\n([\s\S]*?)```/.exec(doc)?.[1];
  assert.ok(yaml, 'SECURITY.md has a yaml example');
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-security-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, yaml);
  const env = { CRAWLER_PASSWORD_HASH: await hashPassword('crawler-pw'), SOCKSGATE_API_TOKEN: 'token-for-the-test' };

  const checked = await runCli(['check', '--config', file], { env, timeoutMs: 90_000 });
  assert.equal(checked.code, 0, checked.stderr);

  const config = await loadConfig({ path: file, env });
  assert.equal(config.listen[0]!.host, '0.0.0.0');
  assert.deepEqual(config.egress.deny, ['loopback', 'private', 'link-local', 'metadata', 'unspecified']);
  assert.equal(config.metrics?.host, '127.0.0.1');
  assert.equal(config.allow_open_proxy, false);
  assert.ok(config.limits.max_connections_per_source > 0 && config.limits.auth_failures.max > 0);

  // The lock that matters most: the same listener without auth is refused.
  const open = join(dir, 'open.yaml');
  await writeFile(open, yaml.replace(/^auth:\n(?: {2}.*\n|\n)*/m, ''));
  const refused = await runCli(['check', '--config', open], { env, timeoutMs: 90_000 });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr + refused.stdout, /open proxy/);
});
