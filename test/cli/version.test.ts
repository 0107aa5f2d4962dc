// `socksgate --version`, as Dante (`sockd -v`), Squid (`squid -v`) and gost (`gost -V`) users expect.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { runCli } from '../helpers/cli.js';

const PACKAGE = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

test('--version and -v print "socksgate VERSION" from package.json and exit 0, whatever command they come with', async () => {
  for (const args of [['--version'], ['-v'], ['check', '--version'], ['--version', '--config', '/nonexistent.yaml']]) {
    const r = await runCli(args);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, `socksgate ${PACKAGE.version}\n`, ''], args.join(' '));
  }
});

test('--help lists --version', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}socksgate --version\b.*print the version/m);
});

test('--help names every option the command line takes, short forms included', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const option of ['--config', '--watch', '--user', '--source', '--udp', '--bind', '--version', '--help', '-c FILE', '-w', '-v', '-h']) {
    assert.ok(r.stdout.includes(option), `${option} in:\n${r.stdout}`);
  }
  // What they mean: each short form beside its long one.
  for (const [short, long] of [['-c FILE', '--config'], ['-w', '--watch'], ['-v', '--version'], ['-h', '--help']]) {
    assert.match(r.stdout, new RegExp(`${short} \\(${long}\\)`));
  }
});

test('the short forms the help names work: -c FILE is --config FILE, -h is --help', async () => {
  const help = await runCli(['-h']);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^usage:/);
  const checked = await runCli(['check', '-c', 'config.example.yaml']);
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, /^config\.example\.yaml: ok$/m);
});
