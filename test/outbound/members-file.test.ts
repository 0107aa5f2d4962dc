import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { loadConfig, parseConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import type { Config } from '../../src/config/types.js';
import { createResolver } from '../../src/dns/resolver.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { loginFingerprint, parseMemberUrl } from '../../src/config/member-url.js';
import { parseMemberLine, parseMembersFile } from '../../src/outbound/members-file.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import type { OutboundContext } from '../../src/outbound/types.js';
import { runCli } from '../helpers/cli.js';
import { socksConnect, startGateway } from '../helpers/index.js';
import { readAll, startDestination, startMicrosocks, startTinyproxy } from '../helpers/upstreams.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });
const ctx = (): OutboundContext => ({ signal: new AbortController().signal, log, sessionKey: 'k' });

async function tempDir(t: { after(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-members-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

test('member URLs of every scheme: type, port default, name resolution, display without the password', () => {
  const cases: [string, string, Record<string, unknown>][] = [
    ['socks5://u:p@10.0.0.1', 'socks5://u@10.0.0.1:1080', { type: 'socks5', port: 1080, remote_dns: true, username: 'u', password: 'p' }],
    ['socks5h://10.0.0.1:1081', 'socks5://10.0.0.1:1081', { type: 'socks5', remote_dns: true }],
    ['socks4://id@10.0.0.1:1082', `socks4://${loginFingerprint('id')}@10.0.0.1:1082`, { type: 'socks4', remote_dns: false, username: 'id' }],
    ['socks4a://10.0.0.1', 'socks4a://10.0.0.1:1080', { type: 'socks4', remote_dns: true }],
    ['http://us%40er:p%3Aw@proxy.example', 'http://us%40er@proxy.example:80', { type: 'http', port: 80, tls: false, username: 'us@er', password: 'p:w' }],
    ['https://u:p@[::1]:8443?remote_dns=false', 'https://u@[::1]:8443', { type: 'http', host: '::1', tls: true, remote_dns: false }],
    ['HTTP://u:p@10.0.0.1:3128#country=de,tier=gold', 'http://u@10.0.0.1:3128', { type: 'http' }],
  ];
  for (const [url, display, fields] of cases) {
    const m = parseMemberUrl(url);
    assert.equal(m.display, display, url);
    for (const [k, v] of Object.entries(fields)) assert.deepEqual((m.config as unknown as Record<string, unknown>)[k], v, `${url} ${k}`);
  }
  assert.deepEqual(parseMemberUrl('socks5://10.0.0.1:1080#country=de,tier=gold').tags, { country: 'de', tier: 'gold' });
  assert.throws(() => parseMemberUrl('socks4://u:SECRET@10.0.0.1:1080'), (e: Error) => /no password/.test(e.message) && !e.message.includes('SECRET'));
  assert.throws(() => parseMemberUrl('http://u:SECRET@10.0.0.1:1080#country'), (e: Error) => /key=value/.test(e.message) && !e.message.includes('SECRET'));
});

test('members_file lines: every form, members_scheme, tags, comments, columns', () => {
  const text = [
    '\uFEFF# provider list',
    '10.0.0.1:8080',
    '10.0.0.2:8080:user:pa:ss@x',
    '  user:p@ss@10.0.0.3:8080 #country=de,city=berlin',
    '[::1]:3128:user:pw#country=us',
    'socks5://u:p@10.0.0.4:1080#country=fr # a comment',
    'https://u:p@10.0.0.5:443 # second',
    '',
    '   # indented comment',
  ].join('\r\n');
  const entries = parseMembersFile(text, 'http');
  const shown = entries.map((e) => ('member' in e ? [e.line, e.col, e.member.display, e.member.tags] : e));
  assert.deepEqual(shown, [
    [2, 1, 'http://10.0.0.1:8080', {}],
    [3, 1, 'http://user@10.0.0.2:8080', {}],
    [4, 3, 'http://user@10.0.0.3:8080', { country: 'de', city: 'berlin' }],
    [5, 1, 'http://user@[::1]:3128', { country: 'us' }],
    [6, 1, 'socks5://u@10.0.0.4:1080', { country: 'fr' }],
    [7, 1, 'https://u@10.0.0.5:443', {}],
  ]);
  const creds = entries.flatMap((e) => ('member' in e && e.member.config.type === 'http' ? [[e.member.config.username, e.member.config.password]] : []));
  assert.deepEqual(creds.slice(0, 4), [
    [undefined, undefined],
    ['user', 'pa:ss@x'],
    ['user', 'p@ss'],
    ['user', 'pw'],
  ]);
  assert.equal(parseMembersFile('10.0.0.1:1080:id', 'socks4a')[0] && 'member' in parseMembersFile('10.0.0.1:1080:id', 'socks4a')[0]! ? 'ok' : 'bad', 'ok');
});

test('members_file: bad lines say where and why, and never quote a password', () => {
  const bad: [string, number, RegExp][] = [
    ['10.0.0.1', 1, /expected host:port/],
    ['::1:1080', 1, /an IPv6 host in brackets: \[::1\]:1080/],
    ['10.0.0.1:http:user:SECRET', 1, /bad port in 10\.0\.0\.1:…/],
    ['  10.0.0.1:70000:user:SECRET', 3, /bad port/],
    ['user:SECRET@10.0.0.1:', 1, /bad port/],
    ['10.0.0.1:1080:user:SECRET #country=', 27, /key=value/],
    ['10.0.0.1:1080:user:SEC#RET', 23, /key=value/],
    ['10.0.0.1:1080:user:SECRET trailing', 27, /unexpected text after the member 10\.0\.0\.1:1080/],
    ['socks5://user:SEC/RET@10.0.0.1:1080', 1, /percent-encoded/],
    ['ftp://user:SECRET@10.0.0.1:21', 1, /unsupported scheme/],
    // Exports from a spreadsheet or a provider's panel: other separators than ":".
    ['10.0.0.1,1080,user,SECRET', 1, /expected host:port.*got 10\.0\.0\.1,…/],
    ['10.0.0.1;1080;user;SECRET', 1, /expected host:port.*got 10\.0\.0\.1;…/],
    ['10.0.0.1|1080|user|SECRET', 1, /expected host:port.*got 10\.0\.0\.1\|…/],
  ];
  for (const [line, col, re] of bad) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e && 'error' in e, line);
    assert.equal(e.col, col, line);
    assert.match(e.error, re, line);
    assert.ok(!/SEC|RET/.test(e.error), e.error);
  }
  const socks4 = parseMemberLine('10.0.0.1:1080:user:SECRET', 'socks4');
  assert.ok(socks4 && 'error' in socks4 && /no password/.test(socks4.error) && !socks4.error.includes('SECRET'));
});

test('a members_file of http proxies (host:port:user:pass) builds a pool that connects through tinyproxy', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.81', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const dir = await tempDir(t);
  await writeFile(join(dir, 'proxies.txt'), `# from the provider\n${tiny.host}:${tiny.port}:user:pass #country=de\n`);
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt, members_scheme: http }\n');
  const map = await buildOutbounds(await loadConfig({ path: file }), { dns, log });
  t.after(() => closeOutbounds(map));
  const pool = map.get('p')!;
  assert.ok(isPoolOutbound(pool));
  assert.deepEqual(pool.stats().map((s) => s.name), [`http://user@${tiny.host}:${tiny.port}`]);
  const conn = await pool.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal((conn.head?.toString() ?? '') + (await readAll(conn.socket)), 'hello 127.0.0.81\n');
  conn.release?.();
});

test('check reports each bad members_file line at FILE:LINE:COL without its password', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, 'proxies.txt'), '10.0.0.1:1080:user:ok\n\n  10.0.0.2:99999:user:SECRET\nuser:SECRET@10.0.0.3:1080 #tier=\n');
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt, members_scheme: http }\n');
  const res = await runCli(['check', '--config', file]);
  assert.equal(res.code, 1, res.stderr);
  assert.match(res.stderr, /proxies\.txt:3:3: bad port in 10\.0\.0\.2:99999/);
  assert.match(res.stderr, /proxies\.txt:4:27: tags after "#" must be key=value/);
  assert.ok(!res.stderr.includes('SECRET'), res.stderr);
  await writeFile(join(dir, 'proxies.txt'), '10.0.0.1:1080:user:ok #tier=a\n');
  const good = await runCli(['check', '--config', file]);
  assert.equal(good.code, 0, good.stderr);
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: gone.txt }\n');
  const missing = await runCli(['check', '--config', file]);
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim(), `${file}:2:34: upstreams.p.members_file: cannot read ${join(dir, 'gone.txt')} (ENOENT)`);
});

test('a reload with a bad members_file line is refused at FILE:LINE:COL and the running pool keeps serving', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.82', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const dir = await tempDir(t);
  const list = join(dir, 'proxies.txt');
  await writeFile(list, `${tiny.host}:${tiny.port}:user:pass\n`);
  const partial = { upstreams: { p: { type: 'pool', members_file: 'proxies.txt', members_scheme: 'http' } }, default: 'p' };
  const source = join(dir, 'socksgate.yaml');
  const gw = await startGateway(partial, { source });
  t.after(() => gw.close());
  await writeFile(list, `${tiny.host}:${tiny.port}:user:pass\n${tiny.host}:x:user:SECRET\n`);
  const next = parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), source, {});
  await assert.rejects(gw.gw.reload(next), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match(e.message, /proxies\.txt:2:1: bad port in 127\.0\.0\.82:…/);
    assert.ok(!e.message.includes('SECRET'), e.message);
    return true;
  });
  const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 10_000);
  assert.equal(await readAll(socket), 'hello 127.0.0.82\n');
});

test('a members_file with no member (empty, blank lines, comments only) is an error at FILE:1:1 for check and at start-up', async (t) => {
  const dir = await tempDir(t);
  const list = join(dir, 'proxies.txt');
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt }\ndefault: p\n');
  for (const text of ['', '\n  \n', '# refreshed by cron\n\n   # nothing yet\n']) {
    await writeFile(list, text);
    const res = await runCli(['check', '--config', file]);
    assert.equal(res.code, 1, `${JSON.stringify(text)}: ${res.stdout}`);
    assert.equal(res.stderr.trim(), `${list}:1:1: members_file holds no member (blank lines and comments only)`);
  }
  // Start-up as well: not a gateway whose every request through the pool fails for a reason it does not give.
  const partial = { upstreams: { p: { type: 'pool', members_file: 'proxies.txt' } }, default: 'p' };
  await assert.rejects(startGateway(partial, { source: file }), (e: unknown) => e instanceof ConfigError && /proxies\.txt:1:1: members_file holds no member/.test(e.message));
});

test('a reload whose members_file is emptied, deleted or unreadable is refused and the running pool keeps serving', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const tiny = await startTinyproxy({ host: '127.0.0.83', user: 'user', pass: 'pass' });
  t.after(() => tiny.close());
  const dir = await tempDir(t);
  const list = join(dir, 'proxies.txt');
  await writeFile(list, `${tiny.host}:${tiny.port}:user:pass\n`);
  const partial = { upstreams: { p: { type: 'pool', members_file: 'proxies.txt', members_scheme: 'http' } }, default: 'p' };
  const source = join(dir, 'socksgate.yaml');
  const gw = await startGateway(partial, { source });
  t.after(() => gw.close());
  const next = (): Config => parseConfig(stringify({ listen: [{ host: '127.0.0.1', port: 0 }], ...partial }), source, {});
  const serves = async (): Promise<void> => {
    const { socket } = await socksConnect(gw.port, { host: '127.0.0.1', port: dest.port }, 10_000);
    assert.equal(await readAll(socket), 'hello 127.0.0.83\n');
  };
  const cases: Array<[string, () => Promise<void>, RegExp]> = [
    // A provider list being rewritten (`fetch > proxies.txt`) is empty for a moment.
    ['emptied', () => writeFile(list, '# provider list, rewritten hourly\n'), /proxies\.txt:1:1: members_file holds no member/],
    ['deleted', () => rm(list), /socksgate\.yaml:\d+:\d+: upstreams\.p\.members_file: cannot read \S+proxies\.txt \(ENOENT\)/],
    // A directory in its place: unreadable whoever runs the test.
    ['unreadable', async () => {
      await rm(list);
      await mkdir(list);
    }, /socksgate\.yaml:\d+:\d+: upstreams\.p\.members_file: cannot read \S+proxies\.txt \(EISDIR\)/],
  ];
  for (const [what, change, error] of cases) {
    await change();
    await assert.rejects(gw.gw.reload(next()), (e: unknown) => e instanceof ConfigError && error.test(e.message), what);
    await serves();
    await rm(list, { recursive: true, force: true });
    await writeFile(list, `${tiny.host}:${tiny.port}:user:pass\n`);
  }
});

test('an IPv6 member is one name however its address is spelt, in a list line as in a URL: the same proxy is one member', () => {
  const listed = (line: string) => {
    const [entry] = parseMembersFile(line, 'socks5');
    assert.ok(entry && 'member' in entry, line);
    return entry.member;
  };
  for (const [spellings, name] of [
    [['[::1]:1080', '[0:0::1]:1080', '[0:0:0:0:0:0:0:1]:1080', 'socks5://[0::1]:1080'], 'socks5://[::1]:1080'],
    [['[2001:DB8::7]:1080', 'socks5://[2001:db8:0::7]:1080'], 'socks5://[2001:db8::7]:1080'],
  ] as const) {
    for (const s of spellings) {
      assert.equal(listed(s).display, name, s);
      assert.equal(listed(s).display, parseMemberUrl(`socks5://${s.replace(/^socks5:\/\//, '')}`).display, s);
    }
  }
  // A mapped IPv4 address reads as the URL parser writes it, whichever form it came in.
  assert.equal(listed('[::FFFF:127.0.0.1]:1080').display, parseMemberUrl('socks5://[::ffff:7f00:1]:1080').display);
  assert.equal(listed('[0::1]:1080').config.host, '::1');
});

test('members_file: a list line with another separator behind a scheme never quotes its password', () => {
  for (const line of ['socks5://10.0.0.1,1080,user,SECRET', 'http://10.0.0.1|8080|user|SECRET', 'socks5://10.0.0.1;1080;user;SECRET']) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e !== undefined && !('member' in e), line);
    assert.ok(!JSON.stringify(e).includes('SECRET'), JSON.stringify(e));
  }
});

test('members_file: a line that reads both as user:pass@host:port and as host:port@user:pass (a password of digits) is read by the host that looks like one', async (t) => {
  const dest = await startDestination();
  t.after(() => dest.close());
  const member = await startMicrosocks({ host: '127.0.0.1', user: 'bob', pass: '12345' });
  t.after(() => member.close());
  // user:pass@host:port, the documented form: the user "bob" is no host, the host after the "@" an address.
  const dir = await tempDir(t);
  await writeFile(join(dir, 'proxies.txt'), `bob:12345@127.0.0.1:${member.port}\n`);
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt }\n');
  const map = await buildOutbounds(await loadConfig({ path: file }), { dns, log });
  t.after(() => closeOutbounds(map));
  const pool = map.get('p')!;
  assert.ok(isPoolOutbound(pool));
  assert.deepEqual(pool.stats().map((s) => s.name), [`socks5://bob@127.0.0.1:${member.port}`]);
  const conn = await pool.connect({ host: '127.0.0.1', port: dest.port }, ctx());
  assert.equal((conn.head?.toString() ?? '') + (await readAll(conn.socket)), 'hello 127.0.0.1\n');
  conn.release?.();
  // host:port@user:pass, a provider's export: read the other way it would log in as "127.0.0.1" at a host "bob".
  for (const line of [`127.0.0.1:${member.port}@bob:12345`, 'gate.example:7000@bob:12345', '[::1]:1080@bob:12345', '10.0.0.1:1080@bob:SECRET']) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e && 'error' in e, `${line} read as ${JSON.stringify(e)}`);
    assert.equal(e.col, 1, line);
    assert.match(e.error, /^expected host:port, .*, got \S+:…@…, which reads as host:port@user:pass: write user:pass@host:port, or, if that is what it is, a URL \(socks5:\/\/user:pass@host:port\)$/, line);
    assert.ok(!/12345|SECRET|bob/.test(e.error), e.error);
  }
  // A user that is one word, a host with dots or an address: the documented reading, as before.
  for (const [line, host, port, password] of [
    ['bob:1234@gate.example:7000', 'gate.example', 7000, '1234'],
    ['bob:1234@squid:3128', 'squid', 3128, '1234'],
    ['10.0.0.1:1080:bob:p@ss:99', '10.0.0.1', 1080, 'p@ss:99'],
  ] as const) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e && 'member' in e, `${line}: ${JSON.stringify(e)}`);
    assert.deepEqual([e.member.config.host, e.member.config.port, e.member.config.username, 'password' in e.member.config ? e.member.config.password : undefined], [host, port, 'bob', password], line);
  }
});

test('members_file: an error after a host:port:user:pass member whose password holds "@" and a port-like tail names its host, none of the password', () => {
  // The password "s3cr@et:4242" ends like user:pass@host:port would; the line is read by its dotted host.
  for (const [line, shown] of [
    ['gw.example.com:1080:bob:s3cr@et:4242 junk', 'unexpected text after the member gw.example.com:1080'],
    ['gw.example.com:1080:bob:s3cr@et:4242 #country=d-e', 'in gw.example.com:1080'],
    ['[::1]:1080:bob:s3cr@et:4242 junk', 'unexpected text after the member [::1]:1080'],
  ] as const) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e && 'error' in e, `${line} read as ${JSON.stringify(e)}`);
    assert.ok(e.error.includes(shown), e.error);
    assert.ok(!/s3cr|et:4242/.test(e.error), e.error);
  }
});

test('members_file: a dotted user with a password of digits reads the documented way when the digits cannot be a port, and is told to use a URL when they can', () => {
  // 123456 is no port: john.doe cannot be a host here, and the line is user:pass@host:port.
  const read = parseMemberLine('john.doe:123456@proxy:3128', 'socks5');
  assert.ok(read && 'member' in read, JSON.stringify(read));
  assert.deepEqual([read.member.config.host, read.member.config.port, read.member.config.username], ['proxy', 3128, 'john.doe']);
  // 1234 could be a port of a host john.doe: refused, saying how to write it unambiguously ...
  const refused = parseMemberLine('john.doe:1234@proxy:3128', 'socks5');
  assert.ok(refused && 'error' in refused, JSON.stringify(refused));
  assert.match(refused.error, /if that is what it is, a URL \(socks5:\/\/user:pass@host:port\)/);
  assert.ok(!refused.error.includes('1234'), refused.error);
  // ... and the URL it names is read as written.
  const url = parseMemberLine('socks5://john.doe:1234@proxy:3128', 'socks5');
  assert.ok(url && 'member' in url, JSON.stringify(url));
  assert.deepEqual([url.member.config.host, url.member.config.port, url.member.config.username], ['proxy', 3128, 'john.doe']);
});

test('members_file: an IP address with a port out of range before the "@" is a bad line, not a user of that name', () => {
  // host:port@user:1234 with a port no proxy has: no reading makes an address a username, and
  // read so the line would dial a host "user".
  for (const line of ['10.0.0.1:65536@user:1234', '10.0.0.1:0@user:1234', '[::1]:0@user:1234', '[2001:db8::1]:99999@user:8080']) {
    const e = parseMemberLine(line, 'socks5');
    assert.ok(e && 'error' in e, `${line} read as ${JSON.stringify(e, (k, v) => (k === 'config' ? undefined : v))}`);
    assert.equal(e.col, 1, line);
  }
  // A dotted user, or a one-word one, with such a password is still the documented reading.
  for (const [line, user] of [['john.doe:0@proxy:3128', 'john.doe'], ['user:65536@proxy:3128', 'user'], ['localhost:99999@10.0.0.2:3128', 'localhost']] as const) {
    const read = parseMemberLine(line, 'socks5');
    assert.ok(read && 'member' in read, `${line}: ${JSON.stringify(read)}`);
    assert.deepEqual([read.member.config.username, read.member.config.port], [user, 3128], line);
  }
});
