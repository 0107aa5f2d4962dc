import { test } from '../helpers/test.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { createResolver } from '../../src/dns/resolver.js';
import { ConfigError } from '../../src/errors.js';
import { buildOutbounds, closeOutbounds } from '../../src/outbound/build.js';
import { loginFingerprint, parseMemberUrl, redact } from '../../src/config/member-url.js';
import { parseMembersFile } from '../../src/outbound/members-file.js';
import { isPoolOutbound } from '../../src/outbound/stats.js';
import { issuesOf } from '../helpers/config.js';

const log = pino({ level: 'silent' });
const dns = createResolver({ cache_size: 100, negative_ttl: 1_000, timeout: 1_000, prefer: 'ipv4', hosts: {} });

/** Builds a one-pool config whose members_file holds `lines`; the ConfigError's text, or the member names. */
async function buildFile(t: { after(fn: () => Promise<void>): void }, lines: string): Promise<{ error?: string; members?: string[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'socksgate-secrets-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'proxies.txt'), lines);
  const file = join(dir, 'socksgate.yaml');
  await writeFile(file, 'upstreams:\n  p: { type: pool, members_file: proxies.txt }\n');
  const config = await loadConfig({ path: file });
  try {
    const built = await buildOutbounds(config, { dns, log });
    const p = built.get('p');
    await closeOutbounds(built);
    return { members: p && isPoolOutbound(p) ? p.stats().map((m) => m.name) : [] };
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return { error: err.message };
  }
}

test('a member URL with a raw "/", "?", "#" or "@" in its password: refused, and the message never shows it', () => {
  for (const text of [
    'socks5://u:pa/SECRET@10.0.0.1:1080',
    'socks5://u:12?SECRET@10.0.0.1:1080', // a port-like start would have parsed as host "u", port 12
    'socks5://u:12#SECRET@10.0.0.1:1080',
    'socks5://u:p@SECRET@10.0.0.1:99999',
  ]) {
    assert.throws(
      () => parseMemberUrl(text),
      (e: Error) => !e.message.includes('SECRET') && !e.message.includes('12') && e.message.includes('10.0.0.1'),
      text,
    );
  }
  const ok = parseMemberUrl('socks5://u:p@ss@10.0.0.1:1080'); // the last "@" ends the user info
  assert.equal(ok.display, 'socks5://u@10.0.0.1:1080');
  assert.equal(ok.config.type === 'socks5' && ok.config.password, 'p@ss');
});

test('redact keeps no part of a password, whatever the line looks like', () => {
  assert.equal(redact('socks5://u:secret@h:1'), 'socks5://u@h:1');
  assert.equal(redact('socks5://u:se/cret@h:1'), 'socks5://u@h:1');
  assert.equal(redact('socks5://u:se@cret@h:1'), 'socks5://u@h:1');
  assert.equal(redact('socks5://u:secret'), 'socks5://u:…');
  assert.equal(redact('socks5://[::1]:1080'), 'socks5://[::1]:1080');
  assert.equal(redact('socks5://h:1080/x'), 'socks5://h:1080/x');
  assert.equal(redact('10.0.0.1:1080:user:secret'), '10.0.0.1:…');
  assert.equal(redact('user:secret@10.0.0.1:1080'), 'user:…');
  assert.equal(redact('not-a-url'), 'not-a-url');
});

test('members_file: bad proxy-list lines fail at FILE:LINE:COL without showing their password', async (t) => {
  for (const [line, col] of [
    ['10.0.0.1:99999:user:SECRET', 1],
    ['  user:SECRET@10.0.0.1:port', 3],
    ['10.0.0.1:1080:user:SECRET extra', 27],
    ['10.0.0.1:1080:user:SECR#ET', 24],
    ['socks4://user:SECRET@10.0.0.1:1080', 1],
  ] as const) {
    const { error } = await buildFile(t, `socks5://10.0.0.2:1080\n${line}\n`);
    assert.ok(error, line);
    assert.match(error, new RegExp(`proxies\\.txt:2:${col}: `), line);
    assert.ok(!error.includes('SECR'), error);
  }
  const { members } = await buildFile(t, '10.0.0.1:1080:user:SECRET\nuser:SECRET@10.0.0.2:1080\n');
  assert.deepEqual(members, ['socks5://user@10.0.0.1:1080', 'socks5://user@10.0.0.2:1080']);
});

test('members_file: a "#" inside a URL is not a comment, so no half password becomes a member', async (t) => {
  assert.deepEqual(
    parseMembersFile('\uFEFF# list\r\nsocks5://a:1 # first\r\n\tsocks5://b:2\t#second\r\n\r\n', 'socks5').map((e) => ('member' in e ? [e.line, e.member.display] : e)),
    [
      [2, 'socks5://a:1'],
      [3, 'socks5://b:2'],
    ],
  );
  const { error, members } = await buildFile(t, 'socks5://u:123#SECRET@10.0.0.1:1080\n');
  assert.equal(members, undefined, `built members ${JSON.stringify(members)}`);
  assert.ok(error && !error.includes('SECRET') && !error.includes('123'), error);
});

test('members_file: a line that is one word (a stray password) fails at FILE:LINE:COL without being quoted', async (t) => {
  for (const [line, col] of [
    ['hunter2SECRET', 1],
    ['  hunter2SECRET#tier=a', 3],
    ['[hunter2SECRET]', 1],
  ] as const) {
    const { error } = await buildFile(t, `socks5://10.0.0.2:1080\n${line}\n`);
    assert.ok(error, line);
    assert.match(error, new RegExp(`proxies\\.txt:2:${col}: expected host:port`), line);
    assert.ok(!error.includes('SECRET'), error);
  }
});

test('a member username with a list separator (",", ";" or "|") is refused, and the message never shows what follows it', async (t) => {
  // `user,SECRET@host:port`: a spreadsheet export read as user:pass@host:port would log in as "user,SECRET".
  for (const line of ['user,SECRET@10.0.0.1:1080', '10.0.0.1:1080:user;SECRET:pass', 'socks5://user|SECRET@10.0.0.1:1080', 'socks5://user;SECRET:p@10.0.0.1:1080']) {
    const { error, members } = await buildFile(t, `${line}\n`);
    assert.equal(members, undefined, `${line} built ${JSON.stringify(members)}`);
    assert.match(error ?? '', /proxies\.txt:1:1: a ",", ";" or "\|" in the username/, line);
    assert.ok(!error!.includes('SECRET'), error);
  }
  const [issue, ...more] = issuesOf('upstreams:\n  p:\n    type: pool\n    members: ["socks5://user,SECRET@10.0.0.1:1080"]\n');
  assert.deepEqual(more, []);
  assert.match(issue!, /^cfg\.yaml:4:15: upstreams\.p\.members\[0\]: a ",", ";" or "\|" in the username/);
  assert.ok(!issue!.includes('SECRET'), issue);
  assert.equal(redact('socks5://user,SECRET@10.0.0.1:1080'), 'socks5://user,…@10.0.0.1:1080');
  // Percent-encoded in a URL, a separator is meant as part of the name: taken as written.
  const encoded = await buildFile(t, 'http://team%7Ca%2Cb:p@10.0.0.1:8080\n');
  assert.equal(encoded.error, undefined, encoded.error);
  assert.deepEqual(encoded.members, ['http://team|a,b@10.0.0.1:8080']);
});

test('a member written host:port@user:pass (a provider export) is refused without its password, in members_file and in members', async (t) => {
  for (const line of ['socks5://10.0.0.1:1080@user:SECRET', 'http://proxy.example:8080@user:SECRET', '10.0.0.1:1080@user:SECRET']) {
    const { error, members } = await buildFile(t, `${line}\n`);
    assert.equal(members, undefined, `${line} built ${JSON.stringify(members)}`);
    assert.match(error ?? '', /proxies\.txt:1:1: /, line);
    assert.ok(!error!.includes('SECRET'), error);
  }
  const issues = issuesOf('upstreams:\n  p: { type: pool, members: ["socks5://10.0.0.1:1080@user:SECRET", "10.0.0.1:1080@user:SECRET"] }\n  s: { type: socks5, host: "10.0.0.1:1080@user:SECRET", port: 1080 }\n');
  assert.equal(issues.length, 3, issues.join('\n'));
  assert.match(issues[0]!, /^cfg\.yaml:2:30: upstreams\.p\.members\[0\]: not a URL: socks5:\/\/10\.0\.0\.1:…/);
  assert.match(issues[1]!, /^cfg\.yaml:2:68: upstreams\.p\.members\[1\]: "10\.0\.0\.1:…" names no upstream/);
  assert.match(issues[2]!, /^cfg\.yaml:3:28: upstreams\.s\.host: "10\.0\.0\.1:…": a host is a name or an address alone/);
  assert.ok(!issues.some((i) => i.includes('SECRET')), issues.join('\n'));
});

test('a member written host:port@user:pass with a password of digits alone (it reads as a port) is refused without its password', async (t) => {
  // 800000 is no port and no host: neither reading builds a member, and neither may quote it.
  for (const line of ['socks5://10.0.0.1:1080@user:800000', '10.0.0.1:1080@user:800000']) {
    const { error, members } = await buildFile(t, `${line}\n`);
    assert.equal(members, undefined, `${line} built ${JSON.stringify(members)}`);
    assert.ok(!(error ?? '').includes('800000'), error);
  }
  const issues = issuesOf('upstreams:\n  p: { type: pool, members: ["socks5://10.0.0.1:1080@user:800000", "10.0.0.1:1080@user:800000"] }\n  s: { type: socks5, host: "10.0.0.1:1080@user:800000", port: 1080 }\n');
  assert.equal(issues.length, 3, issues.join('\n'));
  assert.ok(!issues.some((i) => i.includes('800000')), issues.join('\n'));
  assert.equal(redact('socks5://10.0.0.1:1080@user:800000'), 'socks5://10.0.0.1:…');
});

test('members_file: a one-word line with an "@" in it (a stray password) is not quoted either, not even before its "@"', async (t) => {
  for (const line of ['hunSECRET@2', 'hunSECRET@']) {
    const { error } = await buildFile(t, `socks5://10.0.0.2:1080\n${line}\n`);
    assert.ok(error, line);
    assert.match(error, /proxies\.txt:2:1: expected host:port/, line);
    assert.ok(!error.includes('SECRET'), error);
  }
});

test('members_file: a line with an "@" and no host:port after it (p@ss:word) is no member, and no part of it is quoted', async (t) => {
  for (const line of ['hun@SECRET:PASSW2', 'hun@SECRET:', '  hun@SECRET:PASSW2 #tier=a']) {
    const { error, members } = await buildFile(t, `socks5://10.0.0.2:1080\n${line}\n`);
    assert.equal(members, undefined, `${line} built ${JSON.stringify(members)}`);
    assert.match(error ?? '', /proxies\.txt:2:\d+: expected host:port, .*got a line with no host:port after its "@" \(not shown: it may be a password\)/, line);
    assert.ok(!/hun|SECRET|PASSW2/.test(error!), error);
  }
  // A password holding "@" and then ":" is a password: what follows its "@" is no host:port.
  const { error, members } = await buildFile(t, '10.0.0.1:1080:user:p@SECRET:PASSW2\n');
  assert.equal(error, undefined, error);
  assert.deepEqual(members, ['socks5://user@10.0.0.1:1080']);
  const [entry] = parseMembersFile('10.0.0.1:1080:user:p@SECRET:PASSW2', 'socks5');
  assert.ok(entry && 'member' in entry && entry.member.config.type === 'socks5');
  assert.equal(entry.member.config.password, 'p@SECRET:PASSW2');
});

test('a member URL with bad tags or a bad query is refused without quoting its fragment or query values, which may hold a token', async (t) => {
  const urls = [
    'socks5://u:pw@10.0.0.1:1080#country=de,tier-SECRET',
    'socks5://u:pw@10.0.0.1:1080#SECRET',
    'socks5://u:pw@10.0.0.1:99999?token=SECRET',
    'socks5://u:pw@10.0.0.1:1080?remote_dns=SECRET#tier=a',
  ];
  const issues = issuesOf(`upstreams:\n  p:\n    type: pool\n    members:\n${urls.map((u) => `      - "${u}"\n`).join('')}`);
  assert.equal(issues.length, urls.length, issues.join('\n'));
  for (const issue of issues) {
    assert.match(issue, /^cfg\.yaml:\d+:\d+: upstreams\.p\.members\[\d\]: .*socks5:\/\/u@10\.0\.0\.1:\d+/, issue);
    assert.ok(!/SECRET|pw/.test(issue), issue);
  }
  assert.match(issues[0]!, /tags after "#" must be key=value.* in socks5:\/\/u@10\.0\.0\.1:1080#…(:|$)/);
  assert.match(issues[2]!, /socks5:\/\/u@10\.0\.0\.1:99999\?token=…(:|$)/);
  for (const url of urls) {
    const { error } = await buildFile(t, `${url}\n`);
    assert.match(error ?? '', /proxies\.txt:1:1: /, url);
    assert.ok(!/SECRET|pw/.test(error!), error);
  }
  assert.equal(redact('socks5://u:pw@h:1?a=1&b#x=SECRET'), 'socks5://u@h:1?a=…&…#…');
});

test('a member URL whose username has an empty password (an API key, as http://KEY:@proxy) is refused without quoting the key, as its name leaves it out', () => {
  // Named without the key (the password is empty: the key is the whole login) ...
  assert.equal(parseMemberUrl('http://APIKEY0123456789:@10.0.0.1:8010').display, `http://${loginFingerprint('APIKEY0123456789')}@10.0.0.1:8010`);
  // ... and quoted without it by every config error.
  for (const url of ['socks5://APIKEY0123456789:@gw.example:1080#country=d-e', 'http://APIKEY0123456789:@gw.example:0', 'socks5://APIKEY0123456789:@gw.example:1080?remote_dns=maybe']) {
    assert.throws(() => parseMemberUrl(url), (err: Error) => {
      assert.ok(!err.message.includes('APIKEY'), err.message);
      assert.match(err.message, /:\/\/…@gw\.example:/);
      return true;
    });
  }
  const [issue, ...more] = issuesOf('upstreams:\n  p:\n    type: pool\n    members: ["http://APIKEY0123456789:@10.0.0.1:0"]\n');
  assert.deepEqual(more, []);
  assert.ok(issue !== undefined && !issue.includes('APIKEY'), issue);
  assert.equal(redact('APIKEY0123456789:@gw.example:1080'), '…@…');
});

test('a member URL whose username is the whole login and whose host:port is malformed: the config error never shows the login', async (t) => {
  const urls = ['socks5://KEYSECRET@127.0.0.1:x', 'socks4://KEYSECRET:@127.0.0.1:x', 'socks5://KEYSECRET@[::1', 'socks5://KEYSECRET@127.0.0.1:1080:1'];
  const issues = issuesOf(`upstreams:\n  p: { type: pool, members: ${JSON.stringify(urls)} }\n`);
  assert.equal(issues.length, urls.length, issues.join('\n'));
  assert.ok(!issues.some((i) => i.includes('KEYSECRET')), issues.join('\n'));
  for (const url of urls) {
    assert.ok(!redact(url).includes('KEYSECRET'), `${url}: ${redact(url)}`);
    const { error, members } = await buildFile(t, `${url}\n`);
    assert.equal(members, undefined, `${url} built ${JSON.stringify(members)}`);
    assert.ok(error && !error.includes('KEYSECRET'), error);
  }
  // host:port@user:pass keeps its host, as before.
  assert.equal(redact('socks5://10.0.0.1:1080@user:SECRET'), 'socks5://10.0.0.1:…');
});
