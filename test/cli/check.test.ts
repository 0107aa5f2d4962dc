// `socksgate check`: every error reads FILE:LINE:COL, list files and members files included.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { configFile, runCli } from '../helpers/cli.js';

test('check accepts config.example.yaml', async () => {
  const r = await runCli(['check', '--config', 'config.example.yaml']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /ok/);
});

test('check: a YAML syntax error names file, line and column', async () => {
  const path = await configFile('listen:\n  - host: 127.0.0.1\n    port: [1080\nrules: []\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`^${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `, 'm'));
});

test('check: a schema violation names its line', async () => {
  const path = await configFile('listen:\n  - host: 127.0.0.1\n    port: 1080\nlimits:\n  idle_timeout: forever\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${path}:5:\\d+: .*idle_timeout`));
});

test('check: an action naming no upstream names its line', async () => {
  const path = await configFile('rules:\n  - name: r1\n    domains: [example.com]\n    action: nowhere\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${path}:4:\\d+: .*nowhere`));
});

test('check: an unset environment variable is an error naming it', async () => {
  const path = await configFile('auth:\n  users:\n    - username: a\n      password: ${SOCKSGATE_TEST_UNSET_VAR}\n');
  const r = await runCli(['check', '--config', path], { env: { SOCKSGATE_TEST_UNSET_VAR: undefined } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /SOCKSGATE_TEST_UNSET_VAR/);
});

test('check validates the list files and members files a config names, with their lines', async () => {
  const path = await configFile('rules:\n  - { name: lan, cidrs_file: lan.txt, action: direct }\n');
  await writeFile(join(path, '..', 'lan.txt'), '10.0.0.0/8\nbogus\n');
  const bad = await runCli(['check', '--config', path]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /lan\.txt:2:1: .*bogus/);
  await writeFile(join(path, '..', 'lan.txt'), '10.0.0.0/8\n');
  assert.equal((await runCli(['check', '--config', path])).code, 0);

  const pool = await configFile('upstreams:\n  p: { type: pool, members_file: proxies.txt }\n');
  await writeFile(join(pool, '..', 'proxies.txt'), 'socks5://127.0.0.1:1080\nnot a url\n');
  const badPool = await runCli(['check', '--config', pool]);
  assert.equal(badPool.code, 1);
  assert.match(badPool.stderr, /proxies\.txt:2:1: /);
});

test('check reports every bad list file and members file at once, not only the first it read', async () => {
  const path = await configFile(
    'upstreams:\n  a: { type: pool, members_file: a.txt }\n  b: { type: pool, members_file: b.txt }\n' +
      'rules:\n  - { name: lan, cidrs_file: lan.txt, action: a }\n',
  );
  await writeFile(join(path, '..', 'a.txt'), 'socks5://127.0.0.1:1080\nnot a url\n');
  await writeFile(join(path, '..', 'b.txt'), 'also bad\n');
  await writeFile(join(path, '..', 'lan.txt'), 'bogus\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lan\.txt:1:1: .*bogus/);
  assert.match(r.stderr, /a\.txt:2:1: /);
  assert.match(r.stderr, /b\.txt:1:1: /);
});

test('check: a byte order mark at the start of a list file does not shift its first line\'s column', async () => {
  const path = await configFile('rules:\n  - { name: lan, cidrs_file: lan.txt, domains_file: names.txt, action: direct }\n');
  await writeFile(join(path, '..', 'lan.txt'), '\uFEFFbogus\n');
  await writeFile(join(path, '..', 'names.txt'), '\uFEFF  bad..name\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /lan\.txt:1:1: .*bogus/);
  assert.match(r.stderr, /names\.txt:1:3: .*bad\.\.name/);
});

test('check: a list file with many bad lines names the first 20, then where the rest begin, FILE:LINE:COL like every error', async () => {
  const path = await configFile('rules:\n  - { name: lan, cidrs_file: lan.txt, action: direct }\n');
  await writeFile(join(path, '..', 'lan.txt'), `10.0.0.0/8\n${Array.from({ length: 25 }, (_, i) => `bogus${i}`).join('\n')}\n`);
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 21, r.stderr);
  for (const line of lines) assert.match(line, /^\S+lan\.txt:\d+:\d+: /);
  assert.match(lines[20]!, /lan\.txt:22:1: 5 more invalid lines/);
});

test('check: a list, members or CA file that cannot be read is an error at the config line naming it, with the reason', async () => {
  const path = await configFile(
    'upstreams:\n  p: { type: pool, members_file: gone.txt }\n  h: { type: http, host: 127.0.0.1, port: 3128, tls: true, ca: ./certs/ca.pem }\n' +
      'rules:\n  - name: r\n    domains_file: ./nope.txt\n    cidrs_file: lan\n    action: p\n',
  );
  await mkdir(join(path, '..', 'lan'));
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1);
  const dir = join(path, '..');
  assert.deepEqual(r.stderr.trim().split('\n').sort(), [
    `${path}:2:34: upstreams.p.members_file: cannot read ${join(dir, 'gone.txt')} (ENOENT)`,
    `${path}:3:64: upstreams.h.ca: cannot read ${join(dir, 'certs', 'ca.pem')} (ENOENT)`,
    `${path}:6:19: rules[0].domains_file: cannot read ${join(dir, 'nope.txt')} (ENOENT)`,
    `${path}:7:17: rules[0].cidrs_file: cannot read ${join(dir, 'lan')} (EISDIR)`,
  ]);
});

test('check: an http upstream whose ca file is missing or holds no certificate is an error at FILE:LINE:COL', async () => {
  const path = await configFile('upstreams:\n  h: { type: http, host: 127.0.0.1, port: 3128, tls: true, ca: ca.pem }\ndefault: h\n');
  const missing = await runCli(['check', '--config', path]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^\S+socksgate\.yaml:2:\d+: upstreams\.h\.ca: cannot read \S+ca\.pem \(ENOENT\)/m);
  await writeFile(join(path, '..', 'ca.pem'), 'not a certificate\n');
  const empty = await runCli(['check', '--config', path]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /^\S+ca\.pem:1:1: upstreams\.h\.ca: .*no PEM certificate/m);
});

test('check: an auth_failures block of 0s is refused at its line, not taken as no block', async () => {
  const path = await configFile('limits:\n  auth_failures:\n    max: 5\n    block: 0s\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, new RegExp(`${path}:4:12: limits\\.auth_failures\\.block: must be longer than 0`));
});
