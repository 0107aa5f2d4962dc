// The command line itself: usage errors, and a start-up the safety defaults refuse.
import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { configFile, runCli } from '../helpers/cli.js';

test('run refuses an open proxy: non-loopback listen without auth', async () => {
  const path = await configFile('listen:\n  - host: 0.0.0.0\n    port: 0\n');
  const r = await runCli(['--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /allow_open_proxy/);
});

test('usage errors exit 2 and say what is wrong: an unknown option, a bad port, two commands, a missing value', async () => {
  const cases: Array<[string[], RegExp]> = [
    [['--bogus'], /Unknown option '--bogus'/],
    [['check', '--config'], /argument missing/],
    [['check', '--config', ''], /--config needs a file name, got ""/],
    [['route', 'h', '80', '--config='], /--config needs a file name/],
    [['route', 'h', '99999'], /PORT must be a number from 0 to 65535, got "99999"/],
    [['route', 'h'], /HOST and PORT are required/],
    [['route', 'h', '80', '--udp', '--bind'], /--udp and --bind name two commands/],
    [['nope'], /unknown command "nope"/],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, expected, args.join(' '));
    assert.match(r.stderr, /usage:/, args.join(' '));
  }
});

test("an option of another command is a usage error, not silently dropped: check --watch, hash-password --config", async () => {
  const cases: Array<[string[], RegExp]> = [
    [['check', '--watch', '--config', 'config.example.yaml'], /--watch is not an option of check/],
    [['check', '--user', 'alice', '--config', 'config.example.yaml'], /--user is not an option of check/],
    [['hash-password', '--config', 'config.example.yaml'], /--config is not an option of hash-password/],
    [['--udp', '--config', 'no-such-file.yaml'], /--udp is not an option of run/],
    [['route', 'h', '80', '-w', '--config', 'config.example.yaml'], /--watch is not an option of route/],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(args, { input: 'secret\n' });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, expected, args.join(' '));
    assert.match(r.stderr, /usage:/, args.join(' '));
    assert.equal(r.stdout, '', args.join(' '));
  }
});

test('a stray argument is a usage error: `check FILE` does not check the embedded default instead of FILE', async () => {
  const path = await configFile('listen: [{ host: 127.0.0.1, port: 0 }]\nrules: [{ name: r, action: nowhere }]\n', 'gateway.yaml');
  const cases: string[][] = [['check', path], ['run', path, '--config', path], ['hash-password', 'extra']];
  for (const args of cases) {
    const r = await runCli(args, { timeoutMs: 20_000 });
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /unexpected argument ".+"/, args.join(' '));
    assert.match(r.stderr, /usage:/, args.join(' '));
  }
});
