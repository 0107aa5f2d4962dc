import { test } from '../helpers/test.js';
import { tempDir } from '../helpers/temp-dir.js';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { createAuthenticator } from '../../src/server/auth.js';
import { CLI, runCli } from '../helpers/cli.js';
import { startEchoServer, startGateway, socksConnect } from '../helpers/index.js';
import { spawnTied } from '../helpers/spawn.js';

async function configFile(text: string, name = 'socksgate.yaml'): Promise<string> {
  const dir = await tempDir('cli');
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

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

test('run refuses an open proxy: non-loopback listen without auth', async () => {
  const path = await configFile('listen:\n  - host: 0.0.0.0\n    port: 0\n');
  const r = await runCli(['--config', path]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /allow_open_proxy/);
});

const ROUTES = `
auth:
  users: [{ username: alice, password: pw }]
upstreams:
  corp: { type: socks5, host: 127.0.0.9, port: 1080 }
  crawl:
    type: pool
    strategy: sticky
    members: ["socks5://u:secret@127.0.0.10:1080", "socks5://127.0.0.11:1080", "socks5://127.0.0.12:1080"]
rules:
  - { name: ads, domains: ["keyword:adserver"], action: block }
  - { name: intranet, domains: [corp.example.com], cidrs: [10.0.0.0/8], action: corp }
  - { name: crawler, users: [alice], action: crawl }
  - { name: dns-over-udp, commands: [udp], ports: [53], action: block }
`;

test('route prints the rule, its index and the action', async () => {
  const path = await configFile(ROUTES);
  const cases: Array<[string[], RegExp]> = [
    [['x.adserver.net', '443'], /^rule=ads action=block index=0$/m],
    [['wiki.corp.example.com', '80'], /^rule=intranet action=corp index=1$/m],
    [['10.1.2.3', '22'], /^rule=intranet action=corp index=1$/m],
    [['example.org', '80'], /^rule=default action=direct index=-1$/m],
    [['1.1.1.1', '53', '--udp'], /^rule=dns-over-udp action=block index=3$/m],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, expected, args.join(' '));
  }
});

test('route refuses a HOST that a request is refused for before any rule, as traffic is (SOCKS 0x04, HTTP 400)', async () => {
  const path = await configFile(`${ROUTES}  - { name: loopback, cidrs: [127.0.0.0/8], action: block }\n`);
  assert.match((await runCli(['route', '127.0.0.1', '80', '--config', path])).stdout, /^rule=loopback action=block index=4$/m);
  for (const host of ['127.1', '2130706433', 'x.adserver.net..', '.corp.example.com', 'a b.example', 'bü cher.example']) {
    const r = await runCli(['route', host, '80', '--config', path]);
    assert.equal(r.code, 2, `${host}: ${r.stdout}`);
    assert.equal(r.stdout, '', host);
    assert.match(r.stderr, /is not an IP address or a hostname/, host);
  }
  for (const host of ['[::1]', '::ffff:10.1.2.3', 'WIKI.corp.example.com.']) {
    assert.equal((await runCli(['route', host, '80', '--config', path])).code, 0, host);
  }
});

test('route reads a HOST in Unicode as its A-label, as a request naming it in UTF-8 is read', async () => {
  const path = await configFile(`${ROUTES}  - { name: idn, domains: ["full:xn--bcher-kva.example"], action: block }\n`);
  for (const host of ['bücher.example', 'BÜCHER.example']) {
    const r = await runCli(['route', host, '443', '--config', path]);
    assert.equal(r.code, 0, `${host}: ${r.stderr}`);
    assert.match(r.stdout, /^rule=idn action=block index=4$/m, host);
  }
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

test('route names the pool member, the same for one session key, without its password', async () => {
  const path = await configFile(ROUTES);
  const a = await runCli(['route', 'example.org', '443', '--user', 'alice-session-42', '--config', path]);
  const b = await runCli(['route', 'example.org', '443', '--user', 'alice-session-42', '--config', path]);
  assert.equal(a.code, 0, a.stderr);
  assert.match(a.stdout, /^rule=crawler action=crawl member=socks5:\/\/\S+ index=2$/m);
  assert.equal(a.stdout, b.stdout);
  assert.ok(!a.stdout.includes('secret'));
});

test('route --udp and --bind name the pool member that can carry the command, as a request would get', async () => {
  // failover: the first member in order that can carry it; HTTP carries neither, SOCKS4 only BIND.
  const path = await configFile(`
upstreams:
  mix:
    type: pool
    strategy: failover
    members: ["http://10.0.0.1:3128", "socks4://10.0.0.2:1080", "socks5://10.0.0.3:1080"]
  web: { type: pool, members: ["http://10.0.0.4:3128"] }
rules:
  - { name: web, ports: [8080], action: web }
default: mix
`);
  const cases: Array<[string[], string]> = [
    [['443'], 'rule=default action=mix member=http://10.0.0.1:3128 index=-1'],
    [['443', '--bind'], 'rule=default action=mix member=socks4://10.0.0.2:1080 index=-1'],
    [['443', '--udp'], 'rule=default action=mix member=socks5://10.0.0.3:1080 index=-1'],
    [['8080', '--udp'], 'rule=web action=web member=none index=0 unsupported=udp'],
  ];
  for (const [args, expected] of cases) {
    const r = await runCli(['route', 'example.org', ...args, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, args.join(' '));
  }
});

test('route says egress=denied when direct would refuse every address it dials, as the gateway does (0x02, HTTP 403)', async () => {
  // A listener beyond loopback: the guard's default denies private, loopback and link-local networks.
  const path = await configFile(`
listen: [{ host: 0.0.0.0, port: 0 }]
auth: { users: [{ username: a, password: b }] }
dns: { hosts: { "intranet.test": 10.1.2.3, "meta.test": 169.254.169.254 } }
rules:
  - { name: lan, cidrs: [10.0.0.0/8], action: direct }
  - { name: meta, domains: [meta.test], action: direct }
`);
  const cases: Array<[string[], string]> = [
    [['10.1.2.3'], 'rule=lan action=direct index=0'], // the rule's own cidrs lift the guard
    [['intranet.test'], 'rule=lan action=direct index=0 resolved=10.1.2.3'],
    [['192.168.1.1'], 'rule=default action=direct index=-1 egress=denied'],
    [['::ffff:127.0.0.1', '--udp'], 'rule=default action=direct index=-1 egress=denied'],
    [['meta.test'], 'rule=meta action=direct index=1 resolved=169.254.169.254 egress=denied'],
    [['192.168.1.1', '--bind'], 'rule=default action=direct index=-1'], // BIND dials nothing
    [['203.0.113.9'], 'rule=default action=direct index=-1'],
  ];
  for (const [[host, ...flags], expected] of cases) {
    const r = await runCli(['route', host!, '80', ...flags, '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), expected, host);
  }
});

test("route on a gateway serving loopback only: the default guard denies every cloud's metadata server, Google Cloud's IPv6 one included", async () => {
  // On loopback listeners the default is [link-local, metadata]: fd20:ce::254 is in neither unless metadata names it.
  const path = await configFile('listen: [{ host: 127.0.0.1, port: 0 }]\n');
  for (const host of ['169.254.169.254', '100.100.100.200', 'fd00:ec2::254', 'fd20:ce::254', '::ffff:169.254.169.254']) {
    const r = await runCli(['route', host, '80', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'rule=default action=direct index=-1 egress=denied', host);
  }
  const open = await runCli(['route', 'fd20:ce::253', '80', '--config', path]);
  assert.equal(open.stdout.trim(), 'rule=default action=direct index=-1', 'its neighbour is no metadata server');
});

test('hash-password prints a value that logs the password in through the gateway, and no other', async (t) => {
  const r = await runCli(['hash-password'], { input: 'correct horse\n' });
  assert.equal(r.code, 0, r.stderr);
  const hash = r.stdout.trim();
  const echo = await startEchoServer();
  t.after(() => echo.close());
  const gw = await startGateway({ auth: { users: [{ username: 'carol', password_hash: hash }] } });
  t.after(() => gw.close());
  const dest = { host: echo.host, port: echo.port };
  const { socket } = await socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: 'correct horse' });
  t.after(() => socket.destroy());
  socket.write('through');
  const [echoed] = (await once(socket, 'data')) as [Buffer];
  assert.equal(echoed.toString(), 'through');
  socket.destroy();
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: 'correct horsE' }), /Authentication failed/);
  await assert.rejects(socksConnect(gw.port, dest, 5_000, { userId: 'carol', password: hash }), /Authentication failed/, 'the hash is not the password');
  assert.ok(await gw.accessLog((l) => l.user === 'carol' && l.rep === 0));
});

test('hash-password reads a piped password that is not UTF-8 as ISO-8859-1, as a login reads those bytes', async () => {
  // `päss` from a Latin-1 file or terminal: read as UTF-8 it became "p\uFFFDss", a hash no login matched.
  const r = await runCli(['hash-password'], { input: Buffer.from('p\xe4ss\n', 'latin1') });
  assert.equal(r.code, 0, r.stderr);
  const auth = createAuthenticator({ users: [{ username: 'carol', password_hash: r.stdout.trim() }], allow_anonymous: false });
  assert.equal((await auth.verify('carol', 'p\u00e4ss')).ok, true, 'the password a SOCKS5 or Basic login of those bytes (or of its UTF-8) gives');
  assert.equal((await auth.verify('carol', 'p\uFFFDss')).ok, false);
});

test('hash-password refuses a password no SOCKS5 login can carry (over 255 bytes), as check refuses it in plain text', async () => {
  const long = 'é'.repeat(128); // 128 characters, 256 bytes
  const r = await runCli(['hash-password'], { input: `${long}\n` });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /256 bytes in UTF-8: a SOCKS5 login \(RFC 1929\) carries at most 255/);
  assert.ok(!r.stderr.includes(long));
  const fits = await runCli(['hash-password'], { input: `${'é'.repeat(127)}a\n` });
  assert.equal(fits.code, 0, fits.stderr);
  assert.match(fits.stdout, /^scrypt\$/);
});

test('hash-password stops reading a pipe that goes on past what a password can be (yes | socksgate hash-password)', async (t) => {
  const child = spawnTied(process.execPath, ['--import', 'tsx', CLI, 'hash-password'], { stdio: ['pipe', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdin!.on('error', () => {}); // it stops reading: EPIPE here is the point
  // An input that never ends: before, the whole of it was buffered, gigabytes a minute.
  const line = Buffer.from('y\n'.repeat(8_192));
  const feed = setInterval(() => child.stdin!.writable && child.stdin!.write(line), 5);
  t.after(() => clearInterval(feed));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  assert.equal(code, 1, `exit ${code}; stderr: ${stderr}`);
  assert.equal(stdout, '');
  assert.match(stderr, /hash-password: the password is over 255 bytes/);
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

test('route refuses a config whose members file is bad, as start-up and check do, whatever the decision', async () => {
  const path = await configFile('upstreams:\n  p: { type: pool, members_file: proxies.txt }\nrules:\n  - { name: web, ports: [80], action: p }\n');
  await writeFile(join(path, '..', 'proxies.txt'), 'socks5://127.0.0.1:1080\nnot a url\n');
  for (const port of ['80', '443']) {
    const r = await runCli(['route', 'example.com', port, '--config', path]);
    assert.equal(r.code, 1, `port ${port}: ${r.stdout}`);
    assert.equal(r.stdout, '', `port ${port}`);
    assert.match(r.stderr, /proxies\.txt:2:1: /, `port ${port}`);
  }
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

test('check: an http upstream whose ca file is missing or holds no certificate is an error at FILE:LINE:COL', async () => {
  const path = await configFile('upstreams:\n  h: { type: http, host: 127.0.0.1, port: 3128, tls: true, ca: ca.pem }\ndefault: h\n');
  const missing = await runCli(['check', '--config', path]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^\S+ca\.pem:1:1: upstreams\.h\.ca: .*ENOENT/m);
  await writeFile(join(path, '..', 'ca.pem'), 'not a certificate\n');
  const empty = await runCli(['check', '--config', path]);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /^\S+ca\.pem:1:1: upstreams\.h\.ca: .*no PEM certificate/m);
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

test('check: an auth_failures block of 0s is refused at its line, not taken as no block', async () => {
  const path = await configFile('limits:\n  auth_failures:\n    max: 5\n    block: 0s\n');
  const r = await runCli(['check', '--config', path]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, new RegExp(`${path}:4:12: limits\\.auth_failures\\.block: must be longer than 0`));
});
